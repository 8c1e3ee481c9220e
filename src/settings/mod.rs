//! Layer 2: the settings of a profiling session. `model` holds the resolved types, defaults
//! and limits; `env` reads them from `STACKSAMPLE_*` variables.

mod env;
mod model;

pub use env::{parse_duration, parse_formats, parse_signal, PREFIX};
pub use model::*;
