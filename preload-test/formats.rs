//! Every format parses with a real reader and says the same as the text report: the folded
//! file with inferno, the pprof file with a protobuf decoder and with `go tool pprof`, the SVG
//! as XML, the JSON and speedscope files with a JSON parser against their schema.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use prost::Message;
use stacksample::output::PprofProfile;

use crate::support::{build, run, tool, Run};

const ALL: (&str, &str) = ("STACKSAMPLE_FORMAT", "txt,folded,svg,pprof,json,speedscope");

fn hot_run() -> Run {
    let exe = build("hot", &["-O2"]);
    let run = run(
        &exe,
        &["6000"],
        &[ALL, ("STACKSAMPLE_INTERVAL", "1ms")],
        true,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run
}

pub fn decode_pprof(path: &Path) -> PprofProfile {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    PprofProfile::decode(bytes.as_slice()).unwrap()
}

#[test]
fn pprof_decodes_and_matches_the_report() {
    let run = hot_run();
    let report = run.report();
    let pprof = decode_pprof(&run.profile_file("pb.gz"));
    let text = |id: i64| pprof.string_table[id as usize].as_str();
    let types: Vec<(&str, &str)> = pprof
        .sample_type
        .iter()
        .map(|t| (text(t.r#type), text(t.unit)))
        .collect();
    assert_eq!(types, [("samples", "count"), ("wall", "nanoseconds")]);
    assert_eq!(pprof.period, 1_000_000);
    let total: i64 = pprof.sample.iter().map(|s| s.value[0]).sum();
    assert_eq!(total as u64, report.samples());
    // Leaf first: every sample's first location is burn, its last _start.
    let function_of = |location_id: u64| {
        let location = &pprof.location[location_id as usize - 1];
        let line = location.line.last().unwrap();
        text(pprof.function[line.function_id as usize - 1].name)
    };
    let leaf_burn: i64 = pprof
        .sample
        .iter()
        .filter(|s| function_of(s.location_id[0]) == "burn")
        .map(|s| s.value[0])
        .sum();
    assert!(leaf_burn as f64 >= 0.99 * total as f64);
    let rooted: i64 = pprof
        .sample
        .iter()
        .filter(|s| function_of(*s.location_id.last().unwrap()) == "_start")
        .map(|s| s.value[0])
        .sum();
    assert!(
        rooted as f64 >= 0.99 * total as f64,
        "{rooted} of {total} end in _start"
    );
    let exe_mapping = pprof
        .mapping
        .iter()
        .find(|m| text(m.filename).ends_with("hotO2"))
        .unwrap();
    assert!(!text(exe_mapping.build_id).is_empty());
    assert!(exe_mapping.memory_start < exe_mapping.memory_limit);
    assert!(pprof
        .sample
        .iter()
        .all(|s| text(s.label[0].key) == "thread"));
}

#[test]
fn go_pprof_top_agrees_with_the_report() {
    let run = hot_run();
    let report = run.report();
    let path = run.profile_file("pb.gz");
    let top = tool(
        "go",
        &[
            "tool",
            "pprof",
            "-top",
            "-symbolize=none",
            path.to_str().unwrap(),
        ],
    );
    // Rows: flat flat% sum% cum cum% name
    let mut flat: HashMap<String, u64> = HashMap::new();
    for line in top.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() == 6 && fields[1].ends_with('%') {
            flat.insert(fields[5].to_owned(), fields[0].parse().unwrap_or(0));
        }
    }
    let samples_line = top
        .lines()
        .find(|l| l.contains("Total samples"))
        .unwrap_or("");
    assert!(flat.contains_key("burn"), "{top}");
    // pprof's default sample type is the last one (wall nanoseconds); burn is the top row.
    let first_row = top
        .lines()
        .find(|l| l.split_whitespace().count() == 6 && l.contains('%'));
    assert!(
        first_row.is_some_and(|row| row.ends_with(" burn")),
        "{top}\n{samples_line}"
    );
    assert!(report.functions["burn"].1 >= report.samples() * 99 / 100);
}

#[test]
fn json_has_the_get_result_shape() {
    let run = hot_run();
    let report = run.report();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.profile_file("json")).unwrap()).unwrap();
    assert_eq!(json["samples"].as_u64(), Some(report.samples()));
    let functions = json["functions"].as_array().unwrap();
    let name_of = |f: &serde_json::Value| f["name"].as_str().unwrap().to_owned();
    let names: Vec<String> = functions.iter().map(name_of).collect();
    // The text table is keyed by name here; names that occur twice (two symbols of one
    // name, say during exit) cannot be matched row to row.
    let unique = |name: &str| names.iter().filter(|n| *n == name).count() == 1;
    for function in functions.iter().filter(|f| unique(&name_of(f))) {
        let name = function["name"].as_str().unwrap();
        let (total, self_count, module) = &report.functions[name];
        assert_eq!(function["total"].as_u64(), Some(*total), "{name}");
        assert_eq!(function["self"].as_u64(), Some(*self_count), "{name}");
        assert_eq!(function["module"].as_str(), Some(module.as_str()));
    }
    let hot_a = functions.iter().find(|f| f["name"] == "hot_a").unwrap();
    assert!(hot_a["address"].as_u64().is_some_and(|a| a > 0));
    let stacks = json["stacks"].as_array().unwrap();
    let counted: u64 = stacks.iter().map(|s| s["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, report.samples());
    // A complete stack reaches the root; an incomplete one says why, and only rarely.
    let complete = |s: &&serde_json::Value| s["stop"] == "complete";
    let not_from_start: Vec<_> = stacks
        .iter()
        .filter(complete)
        .filter(|s| s["frames"][0] != "_start")
        .collect();
    assert!(not_from_start.is_empty(), "{not_from_start:#?}");
    let incomplete: Vec<_> = stacks.iter().filter(|s| !complete(s)).collect();
    let incomplete_samples: u64 = incomplete
        .iter()
        .map(|s| s["count"].as_u64().unwrap())
        .sum();
    assert!(
        incomplete_samples * 100 <= report.samples(),
        "{incomplete:#?}"
    );
    for stack in &incomplete {
        let stop = stack["stop"].as_str().unwrap();
        assert!(
            ["unwind_error", "unknown_stack", "no_handler_stack"].contains(&stop),
            "{stack:#?}"
        );
    }
    let modules = json["modules"].as_array().unwrap();
    let exe = modules.iter().find(|m| m["name"] == "hotO2").unwrap();
    let id = exe["build_id"].as_str().unwrap();
    let notes = tool("readelf", &["-n", exe["path"].as_str().unwrap()]);
    assert!(
        notes.contains(&format!("Build ID: {id}")),
        "{id} not in\n{notes}"
    );
}

#[test]
fn speedscope_follows_its_schema_in_time_order() {
    // The main thread first waits for its worker (main_wait), then runs main_after.
    let exe = build("threads", &["-O2"]);
    let env = [ALL, ("STACKSAMPLE_INTERVAL", "2ms")];
    let run = run(&exe, &["300", "300", "0"], &env, true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let report = run.report();
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.profile_file("speedscope.json")).unwrap())
            .unwrap();
    assert_eq!(
        file["$schema"],
        "https://www.speedscope.app/file-format-schema.json"
    );
    let frames = file["shared"]["frames"].as_array().unwrap();
    let profiles = file["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 1, "one profile per thread");
    let profile = &profiles[0];
    assert_eq!(profile["type"], "sampled");
    assert_eq!(profile["unit"], "nanoseconds");
    let samples = profile["samples"].as_array().unwrap();
    let weights = profile["weights"].as_array().unwrap();
    assert_eq!(samples.len() as u64, report.samples());
    assert_eq!(samples.len(), weights.len());
    let end: u64 = weights.iter().map(|w| w.as_u64().unwrap()).sum();
    assert_eq!(profile["endValue"].as_u64(), Some(end));
    let phase: Vec<&str> = samples
        .iter()
        .map(|sample| {
            let names: Vec<&str> = sample
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    frames[i.as_u64().unwrap() as usize]["name"]
                        .as_str()
                        .unwrap()
                })
                .collect();
            if names.contains(&"main_wait") {
                "wait"
            } else if names.contains(&"main_after") {
                "after"
            } else {
                "other"
            }
        })
        .filter(|p| *p != "other")
        .collect();
    let first_after = phase
        .iter()
        .position(|p| *p == "after")
        .expect("no main_after");
    assert!(first_after >= 50, "{phase:?}");
    assert!(
        phase[first_after..].iter().all(|p| *p == "after"),
        "not in time order: {phase:?}"
    );
}

#[test]
fn svg_is_xml_and_folded_renders_with_inferno() {
    let run = hot_run();
    let svg = std::fs::read_to_string(run.profile_file("svg")).unwrap();
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let document = roxmltree::Document::parse_with_options(&svg, options).expect("well-formed XML");
    let titles: Vec<&str> = document
        .descendants()
        .filter(|n| n.has_tag_name("title"))
        .filter_map(|n| n.text())
        .collect();
    assert!(
        titles.iter().any(|t| t.starts_with("hot_a (")),
        "{titles:?}"
    );
    assert!(
        svg.contains("hotO2 6000") || svg.contains("hotO2"),
        "title names the program"
    );

    let folded = std::fs::read(run.profile_file("folded")).unwrap();
    let mut rendered = Vec::new();
    let mut options = inferno::flamegraph::Options::default();
    inferno::flamegraph::from_reader(&mut options, folded.as_slice(), &mut rendered).unwrap();
    assert!(String::from_utf8(rendered).unwrap().contains("level1_b"));
}
