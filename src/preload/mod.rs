//! Layer 13: the library as `LD_PRELOAD` loads it. `lifecycle` is the constructor and
//! destructor and the preloaded session they own; `exec` interposes `exec*` and `_exit`, which
//! write the profile before the process image ends, and `exec_list` the variadic `execl*`.

mod exec;
mod exec_list;
mod lifecycle;
