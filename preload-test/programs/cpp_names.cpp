// C++ names must come out demangled: ns::Worker::spin(int), ns::accumulate<double>(...).
#include <cstdio>
#include <cstdlib>

namespace ns {
template <typename T>
__attribute__((noinline)) T accumulate(T seed, int rounds) {
    volatile T x = seed;
    for (int i = 0; i < rounds * 1000; i++)
        x = x * static_cast<T>(1.0000001) + static_cast<T>(1);
    return x;
}

class Worker {
  public:
    __attribute__((noinline)) double spin(int rounds) {
        double result = accumulate<double>(1.0, rounds);
        asm volatile("" ::: "memory");  // keep the call from becoming a tail call
        return result;
    }
};
}  // namespace ns

int main(int argc, char **argv) {
    ns::Worker worker;
    double total = 0;
    int rounds = argc > 1 ? std::atoi(argv[1]) : 300000;
    for (int i = 0; i < 10; i++)
        total += worker.spin(rounds / 10);
    std::printf("done %d\n", total > 0);
    return 0;
}
