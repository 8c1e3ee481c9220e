//! `stacksample report FILE...`: reads profiles (one process or a whole tree, merged), applies
//! the filters, and renders one format with the library's own writers.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use stacksample::output;
use stacksample::settings::Format;

use crate::failure::Failure;
use crate::filter::{self, Filters, ThreadFilter};
use crate::{input, merge};

const EXAMPLES: &str = "\
Examples:
  stacksample report stacksample.1234.profile.json.gz           # text report
  stacksample report -f svg -o flame.svg stacksample.*.profile.json.gz   # whole process tree
  stacksample report -f speedscope -o run.json --thread 'worker-*' stacksample.1234
  stacksample report --callers '^malloc$' -f folded stacksample.1234.txt
  stacksample report --exclude '^poll$' --collapse-recursion -f pprof -o p.pb.gz run.profile.json.gz
  stacksample report --top 20 stacksample.1234.folded

FILE is a .profile.json.gz file, a .folded file, or any file or prefix of a run whose
.profile.json.gz (else .folded) is beside it. A .folded file has no modules, addresses or
sample order: speedscope then shows no timeline and pprof no mappings.";

#[derive(Args)]
#[command(about = "Render profiles in any format, with filters", after_help = EXAMPLES)]
pub struct ReportArgs {
    /// Profiles to read; several are merged (the processes of one run).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// txt, folded, svg, pprof, json, speedscope or profile.
    #[arg(short = 'f', long, default_value = "txt", value_parser = parse_format)]
    format: Format,
    /// Write here instead of standard output.
    #[arg(short = 'o', long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Only threads with this id or a name matching this glob (repeatable).
    #[arg(long = "thread", value_name = "TID|GLOB")]
    threads: Vec<String>,
    /// Only samples with a function matching this regular expression on the stack.
    #[arg(long, value_name = "REGEX")]
    include: Option<String>,
    /// Leave out samples with a function matching this regular expression on the stack.
    #[arg(long, value_name = "REGEX")]
    exclude: Option<String>,
    /// Remove frames of functions matching this regular expression (samples stay).
    #[arg(long, value_name = "REGEX")]
    hide: Option<String>,
    /// Show a function that calls itself directly as one frame.
    #[arg(long = "collapse-recursion")]
    collapse_recursion: bool,
    /// Callers of the functions matching this regular expression: each stack cut below the
    /// innermost match and inverted, so the function is the root.
    #[arg(long, value_name = "REGEX")]
    callers: Option<String>,
    /// Leaf functions as roots (an inverted flame graph: who called the hot spots).
    #[arg(long)]
    invert: bool,
    /// txt: the N hottest functions; other formats: the N heaviest stacks.
    #[arg(long, value_name = "N")]
    top: Option<usize>,
}

fn parse_format(text: &str) -> Result<Format, String> {
    Format::ALL
        .into_iter()
        .find(|f| f.name() == text)
        .ok_or_else(|| {
            let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
            format!("unknown format; use one of {}", names.join(", "))
        })
}

pub fn run(args: ReportArgs) -> Result<(), Failure> {
    let filters = filters(&args)?;
    let profiles = args
        .files
        .iter()
        .map(|path| input::read(path))
        .collect::<Result<Vec<_>, _>>()?;
    let profile = merge::merge(profiles).ok_or_else(|| Failure::new("no profile given"))?;
    let profile = filter::apply(profile, &filters);
    if profile.stacks.is_empty() {
        eprintln!("stacksample: no sample is left after the filters");
    }
    let top = args.top;
    match &args.output {
        Some(path) => Ok(output::write_file(path, args.format, top, &profile)?),
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            output::render(args.format, top, &profile, &mut out)
                .and_then(|()| out.flush())
                .map_err(|e| Failure::new(format!("cannot write to standard output: {e}")))
        }
    }
}

fn filters(args: &ReportArgs) -> Result<Filters, Failure> {
    let regex = |option: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| filter::regex(option, t))
            .transpose()
    };
    Ok(Filters {
        threads: args
            .threads
            .iter()
            .map(|t| ThreadFilter::parse(t))
            .collect::<Result<_, _>>()?,
        include: regex("--include", &args.include)?,
        exclude: regex("--exclude", &args.exclude)?,
        hide: regex("--hide", &args.hide)?,
        collapse_recursion: args.collapse_recursion,
        callers: regex("--callers", &args.callers)?,
        invert: args.invert,
        // The text report lists the top functions itself.
        top_stacks: args.top.filter(|_| args.format != Format::Txt),
        described: described(args),
    })
}

/// The filters given, as typed.
fn described(args: &ReportArgs) -> String {
    let mut given: Vec<String> = args
        .threads
        .iter()
        .map(|t| format!("--thread {t:?}"))
        .collect();
    let regexes = [
        ("--include", &args.include),
        ("--exclude", &args.exclude),
        ("--hide", &args.hide),
        ("--callers", &args.callers),
    ];
    for (option, value) in regexes {
        given.extend(value.as_ref().map(|v| format!("{option} {v:?}")));
    }
    let switches = [
        ("--collapse-recursion", args.collapse_recursion),
        ("--invert", args.invert),
    ];
    given.extend(switches.iter().filter(|s| s.1).map(|s| s.0.to_owned()));
    if let Some(top) = args.top.filter(|_| args.format != Format::Txt) {
        given.push(format!("--top {top} (heaviest stacks)"));
    }
    given.join(" ")
}
