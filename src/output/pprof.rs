//! `<prefix>.pb.gz`: a gzip-compressed `perftools.profiles.Profile` protobuf, as `pprof`,
//! `go tool pprof` and Grafana Pyroscope read it. The messages are declared here with
//! `prost`'s derive (the schema is small and stable; this avoids a `protoc` build step).
//!
//! Samples carry `samples/count` and `wall/nanoseconds`; locations are leaf first, each with
//! one line per frame, inlined callees before their callers; one mapping per module with its
//! file, file offset and build id; a `thread` label per sample.

use std::collections::HashMap;
use std::io::{self, Write};

use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;

use super::writer::Writer;
use crate::profile::Profile;

pub struct Pprof;

/// `perftools.profiles.Profile` (profile.proto).
#[derive(Clone, PartialEq, Message)]
pub struct PprofProfile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

/// pprof's string table: index 0 is the empty string.
struct Strings {
    table: Vec<String>,
    ids: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        Strings {
            table: vec![String::new()],
            ids: HashMap::from([(String::new(), 0)]),
        }
    }

    fn id(&mut self, text: &str) -> i64 {
        if let Some(&id) = self.ids.get(text) {
            return id;
        }
        let id = self.table.len() as i64;
        self.table.push(text.to_owned());
        self.ids.insert(text.to_owned(), id);
        id
    }
}

impl Writer for Pprof {
    fn write(&self, profile: &Profile, out: &mut dyn Write) -> io::Result<()> {
        let message = encode(profile);
        let mut gzip = GzEncoder::new(out, Compression::default());
        gzip.write_all(&message.encode_to_vec())?;
        gzip.finish()?;
        Ok(())
    }
}

/// The pprof message for `profile`. Ids are indices plus one (0 means none in pprof).
pub fn encode(profile: &Profile) -> PprofProfile {
    let mut strings = Strings::new();
    let period = profile.header.interval.as_nanos() as i64;
    let value_type = |strings: &mut Strings, kind: &str, unit: &str| ValueType {
        r#type: strings.id(kind),
        unit: strings.id(unit),
    };
    let time = profile.header.mode.name();
    let sample_type = vec![
        value_type(&mut strings, "samples", "count"),
        value_type(&mut strings, time, "nanoseconds"),
    ];
    let period_type = Some(value_type(&mut strings, time, "nanoseconds"));
    let has_lines = profile.frames.iter().any(|f| f.line.is_some());
    // pprof takes the first mapping for the main binary: the executable goes first.
    let mut order: Vec<usize> = (0..profile.modules.len()).collect();
    order.sort_by_key(|&m| !profile.modules[m].executable);
    let mut mapping_id = vec![0u64; profile.modules.len()];
    for (position, &module) in order.iter().enumerate() {
        mapping_id[module] = position as u64 + 1;
    }
    let mapping = order
        .iter()
        .map(|&i| (i, &profile.modules[i]))
        .map(|(i, m)| Mapping {
            id: mapping_id[i],
            memory_start: m.start,
            memory_limit: m.end,
            file_offset: m.file_offset,
            filename: strings.id(m.path.as_deref().unwrap_or(&m.name)),
            build_id: strings.id(m.build_id.as_deref().unwrap_or("")),
            has_functions: true,
            has_filenames: has_lines,
            has_line_numbers: has_lines,
            has_inline_frames: has_lines,
        })
        .collect();
    let function = profile
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| Function {
            id: i as u64 + 1,
            name: strings.id(&f.name),
            system_name: strings.id(&f.name),
            filename: strings.id(f.file.as_deref().unwrap_or("")),
            start_line: 0,
        })
        .collect();
    let location = profile
        .locations
        .iter()
        .enumerate()
        .map(|(i, l)| Location {
            id: i as u64 + 1,
            mapping_id: l.module.map_or(0, |m| mapping_id[m]),
            address: l.address,
            // pprof lists the innermost (inlined) frame first, the caller last.
            line: l
                .frames
                .iter()
                .rev()
                .map(|&f| Line {
                    function_id: profile.frames[f].function as u64 + 1,
                    line: profile.frames[f].line.map_or(0, i64::from),
                })
                .collect(),
        })
        .collect();
    let thread_key = strings.id("thread");
    let sample = profile
        .stacks
        .iter()
        .map(|stack| {
            let thread = profile.thread_label(stack.tid);
            Sample {
                location_id: stack
                    .locations
                    .iter()
                    .rev()
                    .map(|&l| l as u64 + 1)
                    .collect(),
                value: vec![stack.count as i64, stack.count as i64 * period],
                label: vec![Label {
                    key: thread_key,
                    str: strings.id(&thread),
                    num: 0,
                }],
            }
        })
        .collect();
    let comment = vec![strings.id(&format!("stacksample: {}", profile.header.command))];
    PprofProfile {
        sample_type,
        sample,
        mapping,
        location,
        function,
        string_table: strings.table,
        time_nanos: 0,
        duration_nanos: profile.header.duration.as_nanos() as i64,
        period_type,
        period,
        comment,
    }
}
