//! `<prefix>.svg`: an interactive flame graph (search, zoom, tooltips) drawn by `inferno`
//! from the folded stacks, titled with the program, its threads and the sample count.
//!
//! Its first screen shows where the time went: when the stacks are too deep for a flame
//! graph to fit on one screen, the graph is turned so that the function with the most samples
//! of its own lands nearer the top: an icicle, root at the top under the title, when it is
//! nearer the root (a native profile of a Python program, whose imports are twice as deep as
//! its work), a flame graph when it is nearer the leaves (with Python frames, where the work
//! sits under a deep recursion and the imports are deeper still); and frames are drawn lower,
//! down to 12 px, until it fits. A label cut to a stub (`..ct`) says nothing, so frames too
//! narrow for a few characters of their name show none.

use std::io::{self, Write};

use inferno::flamegraph::{self, color::BasicPalette, Direction, Options, Palette};

use super::folded::folded_lines;
use super::writer::Writer;
use crate::profile::Profile;

/// The screen the graph should fit: a laptop's browser window (1280x800) less its toolbars.
const FIRST_SCREEN_HEIGHT: usize = 800;
/// inferno's frame height (`defaults::FRAME_HEIGHT`), kept when the hottest function fits.
const FRAME_HEIGHT: usize = 16;
/// The lowest frames are drawn to bring the hottest function onto the first screen, with a
/// font three pixels lower still, so labels stay readable.
const MIN_FRAME_HEIGHT: usize = 12;
/// What inferno's title, subtitle, details line and margins take, at its default font.
const PADDING_HEIGHT: usize = 100;
/// The fewest characters of a name a cut label keeps; shorter stubs are blanked.
const MIN_LABEL_CHARS: usize = 6;

/// inferno's script lays labels out again at load, on resize and on zoom, all through
/// `update_text_for_elements`; this wraps it to blank the stubs it leaves. Its `init` runs at
/// `onload`, after this script, so the wrapper is in place before the first layout.
const BLANK_STUBS_SCRIPT: &str = r#"<script type="text/ecmascript"><![CDATA[
(function () {
    var layout = update_text_for_elements;
    update_text_for_elements = function (elements) {
        layout(elements);
        for (var i = 0; i < elements.length; i++) {
            var text = find_child(elements[i], "text");
            var label = text.textContent;
            var cut = label.startsWith("..") || label.endsWith("..");
            if (cut && label.length < MIN_LABEL_CHARS + 2) text.textContent = "";
        }
    };
})();
]]></script>
"#;

pub struct Svg;

impl Writer for Svg {
    fn write(&self, profile: &Profile, out: &mut dyn Write) -> io::Result<()> {
        let header = &profile.header;
        let executable = header.command.split(' ').next().unwrap_or("program");
        let program = executable.rsplit('/').next().unwrap_or(executable);
        let threads: Vec<String> = header
            .threads
            .iter()
            .map(|t| format!("{} ({})", t.tid, t.name.as_deref().unwrap_or("-")))
            .collect();
        let title = format!("{program}: {} samples", profile.total_samples());
        let about = format!(
            "pid {}, thread {}, every {:?}",
            header.pid,
            threads.join(", "),
            header.interval
        );
        let lines = folded_lines(profile);
        if lines.is_empty() {
            // inferno refuses an empty profile; an empty graph still says what was sampled.
            return write_empty(out, &title);
        }
        render(title, &about, &lines, out)
    }
}

/// Writes the flame graph of `lines` (folded, sorted) to `out`, laid out for its first screen.
fn render(title: String, about: &str, lines: &[String], out: &mut dyn Write) -> io::Result<()> {
    let layout = Layout::for_lines(lines);
    let mut options = Options::default();
    options.title = title;
    options.direction = layout.direction;
    options.frame_height = layout.frame_height;
    options.font_size = options.font_size.min(layout.frame_height - 3);
    // Colours from a hash of the name: a function looks the same in every graph, and two runs
    // of one program give the same file.
    options.colors = Palette::Basic(BasicPalette::Hot);
    options.deterministic = true;
    let order = if layout.direction == Direction::Inverted {
        "; callers above callees"
    } else {
        ""
    };
    options.subtitle = Some(format!(
        "{about}{order}; width: share of samples; colour: a hue per function name, nothing more"
    ));
    let mut svg = WithoutStubs {
        out,
        pending: Vec::new(),
    };
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
        .map_err(io::Error::other)?;
    svg.finish()
}

/// How the graph is turned and how tall its frames are.
struct Layout {
    direction: Direction,
    frame_height: usize,
}

impl Layout {
    fn for_lines(lines: &[String]) -> Layout {
        let room = FIRST_SCREEN_HEIGHT - PADDING_HEIGHT;
        let depth = lines
            .iter()
            .map(|line| stack_depth(line))
            .max()
            .unwrap_or(0);
        if depth * FRAME_HEIGHT <= room {
            return Layout {
                direction: Direction::Straight,
                frame_height: FRAME_HEIGHT,
            };
        }
        // Frames from the top to the hottest function, in either direction.
        let hottest = hottest_leaf_depth(lines).unwrap_or(1);
        let (direction, frames) = if hottest <= depth - hottest + 1 {
            (Direction::Inverted, hottest)
        } else {
            (Direction::Straight, depth - hottest + 1)
        };
        Layout {
            direction,
            frame_height: (room / frames.max(1)).clamp(MIN_FRAME_HEIGHT, FRAME_HEIGHT),
        }
    }
}

/// Frames of a folded line (`a;b;c 12`).
fn stack_depth(line: &str) -> usize {
    line.matches(';').count() + 1
}

/// The depth of the heaviest stack of the function with the most samples of its own.
fn hottest_leaf_depth(lines: &[String]) -> Option<usize> {
    let parsed: Vec<(&str, usize, u64)> = lines
        .iter()
        .filter_map(|line| {
            let (stack, count) = line.rsplit_once(' ')?;
            let leaf = stack.rsplit(';').next()?;
            Some((leaf, stack_depth(stack), count.parse().ok()?))
        })
        .collect();
    let mut own: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for &(leaf, _, count) in &parsed {
        *own.entry(leaf).or_default() += count;
    }
    let hottest = own.iter().max_by_key(|&(name, count)| (*count, *name))?.0;
    parsed
        .iter()
        .filter(|(leaf, _, _)| leaf == hottest)
        .max_by_key(|&&(_, depth, count)| (count, depth))
        .map(|&(_, depth, _)| depth)
}

const LABEL_END: &[u8] = b"</text>";

/// Passes inferno's SVG on as it is written, with the labels it cut to stubs blanked (the ones
/// it writes for viewers without scripts; `BLANK_STUBS_SCRIPT`, added at the end, blanks those
/// its script writes in a browser). It holds back only what follows the last whole label, so a
/// graph of many stacks is never held in memory whole.
struct WithoutStubs<'a> {
    out: &'a mut dyn Write,
    pending: Vec<u8>,
}

impl WithoutStubs<'_> {
    fn finish(self) -> io::Result<()> {
        let end = find_last(&self.pending, b"</svg>").unwrap_or(self.pending.len());
        let script = BLANK_STUBS_SCRIPT.replace("MIN_LABEL_CHARS", &MIN_LABEL_CHARS.to_string());
        self.out.write_all(&self.pending[..end])?;
        self.out.write_all(script.as_bytes())?;
        self.out.write_all(&self.pending[end..])
    }
}

impl Write for WithoutStubs<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let Some(last) = find_last(&self.pending, LABEL_END) else {
            return Ok(buf.len());
        };
        let done = last + LABEL_END.len();
        let mut rest = &self.pending[..done];
        while let Some(end) = rest.windows(LABEL_END.len()).position(|w| w == LABEL_END) {
            let (before, after) = rest.split_at(end);
            let start = before.iter().rposition(|&b| b == b'>').map_or(0, |i| i + 1);
            let label = String::from_utf8_lossy(&before[start..]);
            // inferno cuts names on the right when it writes them.
            let stub = label.ends_with("..") && label.chars().count() < MIN_LABEL_CHARS + 2;
            self.out
                .write_all(if stub { &before[..start] } else { before })?;
            self.out.write_all(LABEL_END)?;
            rest = &after[LABEL_END.len()..];
        }
        self.pending.drain(..done);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

fn write_empty(out: &mut dyn Write, title: &str) -> io::Result<()> {
    let title = title.replace('&', "&amp;").replace('<', "&lt;");
    writeln!(
        out,
        r#"<?xml version="1.0" standalone="no"?><svg version="1.1" width="1200" height="60" xmlns="http://www.w3.org/2000/svg"><text x="600" y="30" text-anchor="middle">{title}</text></svg>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(lines: &[&str]) -> String {
        let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let mut svg = Vec::new();
        render("prog: 100 samples".to_owned(), "pid 1", &lines, &mut svg).unwrap();
        String::from_utf8(svg).unwrap()
    }

    /// The `y` of the rectangle of the first frame whose tooltip starts with `name (`.
    fn frame_y(svg: &str, name: &str) -> usize {
        let at = svg.find(&format!("<title>{name} (")).unwrap();
        let y = &svg[at..][svg[at..].find(" y=\"").unwrap() + 4..];
        y[..y.find('"').unwrap()].parse().unwrap()
    }

    fn labels(svg: &str) -> Vec<&str> {
        svg.split("</text>")
            .filter_map(|piece| piece.rsplit_once('>').map(|(_, label)| label))
            .collect()
    }

    /// A 60-frame tower of `tower` samples and `work` of `hot` samples at `work_depth`.
    fn tower_and_work(work_depth: usize, tower: u64, hot: u64) -> String {
        let tower_frames: Vec<String> = (0..60).map(|i| format!("import{i}")).collect();
        let work_frames: Vec<String> = (0..work_depth).map(|i| format!("call{i}")).collect();
        graph(&[
            &format!("main;{} {tower}", tower_frames.join(";")),
            &format!("main;{};work {hot}", work_frames.join(";")),
        ])
    }

    #[test]
    fn deep_stacks_turn_the_hottest_function_towards_the_top() {
        // Work near the root, a deep tower of imports: an icicle, root under the title.
        let svg = tower_and_work(2, 10, 90);
        assert!(frame_y(&svg, "all") < 100, "the root is at the top");
        assert!(frame_y(&svg, "work") < 800);
        assert!(svg.contains("callers above callees"));

        // Work under a deep recursion, the imports deeper still: a flame graph, lower frames.
        let svg = tower_and_work(45, 10, 90);
        assert!(
            frame_y(&svg, "all") > frame_y(&svg, "work"),
            "a flame graph"
        );
        assert!(
            frame_y(&svg, "work") < 800,
            "work at {}",
            frame_y(&svg, "work")
        );
        assert!(!svg.contains("callers above callees"));

        let shallow = graph(&["main;work 100"]);
        assert!(
            frame_y(&shallow, "all") > frame_y(&shallow, "work"),
            "a flame graph"
        );
        assert!(!shallow.contains("callers above callees"));
    }

    #[test]
    fn the_subtitle_says_what_width_and_colour_mean() {
        let svg = graph(&["main;work 100"]);
        assert!(svg.contains(
            ">pid 1; width: share of samples; colour: a hue per function name, nothing more<"
        ));
    }

    #[test]
    fn frames_too_narrow_for_a_name_show_no_stub() {
        // At 3% of 1200 px a frame fits 5 characters: inferno would write "nar..".
        let svg = graph(&["main;wide_function 97", "main;narrow_function_name 3"]);
        let labels = labels(&svg);
        assert!(labels.contains(&"wide_function"), "{labels:?}");
        let stubs: Vec<&&str> = labels
            .iter()
            .filter(|l| l.ends_with("..") && l.len() < MIN_LABEL_CHARS + 2)
            .collect();
        assert!(stubs.is_empty(), "{stubs:?}");
        assert!(svg.contains("<title>narrow_function_name (3 samples"));
    }

    #[test]
    fn the_script_that_blanks_stubs_wraps_the_layout_function_inferno_calls() {
        let svg = graph(&["main;work 100"]);
        let inferno = svg.find("function update_text_for_elements(").unwrap();
        let ours = svg.find("var layout = update_text_for_elements;").unwrap();
        assert!(inferno < ours && svg[ours..].contains("label.length < 6 + 2"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
