// Rust names must come out demangled: rust_names::engine::Gear::turn, no hash suffix.
mod engine {
    pub struct Gear {
        pub teeth: u64,
    }

    impl Gear {
        #[inline(never)]
        pub fn turn(&self, rounds: u64) -> u64 {
            let mut x = self.teeth;
            for _ in 0..rounds * 1000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            x
        }
    }
}

fn main() {
    let rounds: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let gear = engine::Gear { teeth: 7 };
    println!("done {}", gear.turn(rounds) & 1);
}
