//! Diagnostics: `file:line:col: message` plus a hint saying what to do.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found in one or more files, reported together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "\n{n} problem{} found", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}

/// Maps byte offsets of one source text to 1-based line and column (in characters).
pub struct Source<'s> {
    pub file: &'s Path,
    pub text: &'s str,
}

impl Source<'_> {
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        (line, col)
    }
    pub fn diag(
        &self,
        offset: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let (line, col) = self.line_col(offset);
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            col,
            message: message.into(),
            hint,
        }
    }
}

/// The known name closest to `word` (edit distance ≤ 2, or a prefix match), for "did you mean".
pub fn suggest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        let d = edit_distance(word, k);
        let close = d <= 2 || (word.len() >= 3 && (k.starts_with(word) || word.starts_with(k)));
        if close && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn line_and_column() {
        let s = Source {
            file: Path::new("x.toml"),
            text: "a = 1\nbé = 2\n",
        };
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        assert_eq!(s.line_col(9), (2, 3));
    }
    #[test]
    fn suggestions() {
        assert_eq!(suggest("clinets", ["clients", "keys"]), Some("clients"));
        assert_eq!(suggest("zzz", ["clients", "keys"]), None);
    }
}
