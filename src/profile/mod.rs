//! Layer 9: the symbolized profile. `model` holds its types, `build` makes one from the
//! drain's aggregate at dump time, `queries` answers what the reports ask of it.

mod build;
mod model;
mod queries;

pub use build::lookup_addresses;
pub use model::*;
