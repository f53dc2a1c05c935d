//! Scenario files: TOML with spans → diagnostics (`file:line:col`) or a compiled [`crate::plan::Plan`].
//! Never touches the network.

pub mod compile;
pub mod diag;
pub mod reader;

use std::path::Path;

pub use diag::{Diagnostic, Diagnostics};

/// Read and compile one scenario file.
pub fn load(path: &Path) -> Result<crate::plan::Plan, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read scenario: {e}"),
            hint: Some("check the path".into()),
        }])
    })?;
    compile::compile_str(path, &text)
}
