//! A schema reader over toml's spanned tables: typed getters that keep spans, remember which
//! keys are known, and collect every problem instead of stopping at the first.

use crate::units::parse_duration;
use std::cell::RefCell;
use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diag::{suggest, Diagnostic, Source};

/// Shared state of one file's reading: the source and the problems found so far.
pub struct Ctx<'s> {
    pub src: Source<'s>,
    pub diags: RefCell<Vec<Diagnostic>>,
}

impl<'s> Ctx<'s> {
    pub fn new(src: Source<'s>) -> Self {
        Ctx {
            src,
            diags: RefCell::new(vec![]),
        }
    }
    pub fn error(&self, span: &Range<usize>, message: impl Into<String>, hint: Option<String>) {
        self.diags
            .borrow_mut()
            .push(self.src.diag(span.start, message, hint));
    }
}

/// A value with the byte range it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub span: Range<usize>,
}

/// One TOML table being read.
pub struct Obj<'a, 's> {
    pub ctx: &'a Ctx<'s>,
    table: &'a DeTable<'s>,
    pub span: Range<usize>,
    /// Dotted name for messages: `workload.lock`.
    pub path: String,
    known: RefCell<Vec<&'static str>>,
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 's> Obj<'a, 's> {
    pub fn new(
        ctx: &'a Ctx<'s>,
        table: &'a DeTable<'s>,
        span: Range<usize>,
        path: impl Into<String>,
    ) -> Self {
        Obj {
            ctx,
            table,
            span,
            path: path.into(),
            known: RefCell::new(vec![]),
        }
    }

    fn where_(&self, key: &str) -> String {
        if self.path.is_empty() {
            format!("`{key}`")
        } else {
            format!("`{}.{key}`", self.path)
        }
    }

    /// The raw spanned value of `key`, marking the key as known.
    pub fn raw(&self, key: &'static str) -> Option<&'a Spanned<DeValue<'s>>> {
        self.known.borrow_mut().push(key);
        self.table.get(key)
    }

    /// A string value without marking the key as read (for cross-references).
    pub fn table_str(&self, key: &str) -> Option<String> {
        match self.table.get(key).map(|v| v.get_ref()) {
            Some(DeValue::String(s)) => Some(s.to_string()),
            _ => None,
        }
    }

    pub fn has(&self, key: &'static str) -> bool {
        self.table.get(key).is_some()
    }

    fn wrong(&self, key: &str, v: &Spanned<DeValue<'_>>, want: &str) {
        let example = if want.starts_with("a duration") {
            format!("{key} = \"10s\"")
        } else if want.contains("integer") || want.contains("number") {
            format!("{key} = 10")
        } else if want.contains("true or false") {
            format!("{key} = true")
        } else if want.contains("array") {
            format!("{key} = [\"…\"]")
        } else if want.contains("table") {
            format!("[{}.{key}] or {key} = {{ … }}", self.path)
        } else {
            format!("{key} = \"…\"")
        };
        self.ctx.error(
            &v.span(),
            format!(
                "{} must be {want}, not {}",
                self.where_(key),
                type_name(v.get_ref())
            ),
            Some(format!("write it as {example}")),
        );
    }

    pub fn missing(&self, key: &str, hint: Option<String>) {
        self.ctx
            .error(&self.span, format!("missing {}", self.where_(key)), hint);
    }

    pub fn str(&self, key: &'static str) -> Option<At<String>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(At {
                value: s.to_string(),
                span: v.span(),
            }),
            _ => {
                self.wrong(key, v, "a string");
                None
            }
        }
    }

    pub fn req_str(&self, key: &'static str, hint: &str) -> Option<At<String>> {
        let r = self.str(key);
        if r.is_none() && !self.has(key) {
            self.missing(key, Some(hint.to_string()));
        }
        r
    }

    /// A string that must be one of `choices`.
    pub fn choice(&self, key: &'static str, choices: &[&'static str]) -> Option<At<String>> {
        let s = self.str(key)?;
        if choices.contains(&s.value.as_str()) {
            Some(s)
        } else {
            let hint = match suggest(&s.value, choices.iter().copied()) {
                Some(g) => format!("did you mean \"{g}\"? one of: {}", choices.join(", ")),
                None => format!("one of: {}", choices.join(", ")),
            };
            self.ctx.error(
                &s.span,
                format!("unknown {} {:?}", self.where_(key), s.value),
                Some(hint),
            );
            None
        }
    }

    pub fn int(&self, key: &'static str) -> Option<At<i64>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(At {
                    value: n,
                    span: v.span(),
                }),
                Err(_) => {
                    self.ctx.error(
                        &v.span(),
                        format!("{} is out of range", self.where_(key)),
                        None,
                    );
                    None
                }
            },
            _ => {
                self.wrong(key, v, "an integer");
                None
            }
        }
    }

    /// A non-negative integer no larger than `max`.
    pub fn uint(&self, key: &'static str, max: u64) -> Option<At<u64>> {
        let i = self.int(key)?;
        if i.value < 0 || i.value as u64 > max {
            self.ctx.error(
                &i.span,
                format!(
                    "{} must be between 0 and {max}, got {}",
                    self.where_(key),
                    i.value
                ),
                None,
            );
            return None;
        }
        Some(At {
            value: i.value as u64,
            span: i.span,
        })
    }

    /// A number (integer or float).
    pub fn num(&self, key: &'static str) -> Option<At<f64>> {
        let v = self.raw(key)?;
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|x| x as f64),
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            _ => {
                self.wrong(key, v, "a number");
                return None;
            }
        };
        match n {
            Some(x) if x.is_finite() => Some(At {
                value: x,
                span: v.span(),
            }),
            _ => {
                self.ctx.error(
                    &v.span(),
                    format!("{} must be a finite number", self.where_(key)),
                    None,
                );
                None
            }
        }
    }

    /// A fraction in [0, 1].
    pub fn fraction(&self, key: &'static str) -> Option<At<f64>> {
        let n = self.num(key)?;
        if !(0.0..=1.0).contains(&n.value) {
            self.ctx.error(
                &n.span,
                format!(
                    "{} must be between 0 and 1, got {}",
                    self.where_(key),
                    n.value
                ),
                Some("a share: 0.05 means 5%".into()),
            );
            return None;
        }
        Some(n)
    }

    pub fn bool(&self, key: &'static str) -> Option<At<bool>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(At {
                value: *b,
                span: v.span(),
            }),
            _ => {
                self.wrong(key, v, "true or false");
                None
            }
        }
    }

    /// A humantime duration string: "250ms", "10s", "2m".
    pub fn duration(&self, key: &'static str) -> Option<At<Duration>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::String(s) => match parse_duration(s) {
                Ok(d) => Some(At {
                    value: d,
                    span: v.span(),
                }),
                Err(e) => {
                    self.ctx.error(
                        &v.span(),
                        format!("{} is not a duration: {e}", self.where_(key)),
                        Some("write durations like \"250ms\", \"10s\", \"2m\"".into()),
                    );
                    None
                }
            },
            _ => {
                self.wrong(key, v, "a duration string like \"10s\"");
                None
            }
        }
    }

    pub fn str_list(&self, key: &'static str) -> Option<At<Vec<String>>> {
        let v = self.raw(key)?;
        let DeValue::Array(arr) = v.get_ref() else {
            self.wrong(key, v, "an array of strings");
            return None;
        };
        let mut out = vec![];
        for item in arr.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(s.to_string()),
                other => {
                    self.ctx.error(
                        &item.span(),
                        format!(
                            "{} must hold strings, not {}",
                            self.where_(key),
                            type_name(other)
                        ),
                        None,
                    );
                    return None;
                }
            }
        }
        Some(At {
            value: out,
            span: v.span(),
        })
    }

    /// A sub-table (`[workload.lock]` or an inline table).
    pub fn table(&self, key: &'static str) -> Option<Obj<'a, 's>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Obj::new(
                self.ctx,
                t,
                v.span(),
                if self.path.is_empty() {
                    key.to_string()
                } else {
                    format!("{}.{key}", self.path)
                },
            )),
            _ => {
                self.wrong(key, v, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[workload]]`).
    pub fn tables(&self, key: &'static str) -> Vec<Obj<'a, 's>> {
        let Some(v) = self.raw(key) else {
            return vec![];
        };
        let DeValue::Array(arr) = v.get_ref() else {
            self.wrong(key, v, "an array of tables");
            return vec![];
        };
        let mut out = vec![];
        for item in arr.iter() {
            match item.get_ref() {
                DeValue::Table(t) => out.push(Obj::new(self.ctx, t, item.span(), key)),
                other => self.ctx.error(
                    &item.span(),
                    format!("each `{key}` must be a table, not {}", type_name(other)),
                    Some(format!("write [[{key}]] sections")),
                ),
            }
        }
        out
    }

    /// All entries, for free-form tables (thresholds, plugin params).
    pub fn entries(&self) -> impl Iterator<Item = (At<String>, &'a Spanned<DeValue<'s>>)> + '_ {
        self.table.iter().map(|(k, v)| {
            (
                At {
                    value: k.get_ref().to_string(),
                    span: k.span(),
                },
                v,
            )
        })
    }

    /// Report every key that no getter asked for, with a suggestion.
    pub fn finish(self) {
        let known = self.known.borrow();
        for (k, _) in self.table.iter() {
            let name = k.get_ref().as_ref();
            if !known.contains(&name) {
                let hint = match suggest(name, known.iter().copied()) {
                    Some(g) => Some(format!("did you mean `{g}`?")),
                    None if known.is_empty() => None,
                    None => Some(format!("known keys here: {}", known.join(", "))),
                };
                self.ctx.error(
                    &k.span(),
                    format!("unknown key {}", self.where_(name)),
                    hint,
                );
            }
        }
    }
}

/// A value rendered as a string for free-form parameters.
pub fn scalar_to_string(v: &DeValue<'_>) -> Option<String> {
    Some(match v {
        DeValue::String(s) => s.to_string(),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok()?.to_string(),
        DeValue::Float(f) => f.as_str().to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        _ => return None,
    })
}

impl Obj<'_, '_> {
    /// A [`crate::plan::DurDist`]: a duration string or a table { min, max } / { mean }.
    pub fn dur_dist(&self, key: &'static str) -> Option<crate::plan::DurDist> {
        use crate::plan::DurDist;
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::String(_) => self.duration(key).map(|d| DurDist::Fixed(d.value)),
            DeValue::Table(t) => {
                let o = Obj::new(self.ctx, t, v.span(), format!("{}.{key}", self.path));
                let min = o.duration("min");
                let max = o.duration("max");
                let mean = o.duration("mean");
                let r = match (min, max, mean) {
                    (Some(a), Some(b), None) if a.value <= b.value => {
                        Some(DurDist::Uniform(a.value, b.value))
                    }
                    (Some(a), Some(_), None) => {
                        self.ctx.error(&a.span, "`min` must not exceed `max`", None);
                        None
                    }
                    (None, None, Some(m)) => Some(DurDist::Exp(m.value)),
                    _ => {
                        self.ctx.error(
                            &v.span(),
                            format!(
                                "{} must be a duration, {{ min, max }} or {{ mean }}",
                                self.where_(key)
                            ),
                            Some("e.g. hold = { min = \"10ms\", max = \"30ms\" }".into()),
                        );
                        None
                    }
                };
                o.finish();
                r
            }
            _ => {
                self.wrong(key, v, "a duration or a { min, max } / { mean } table");
                None
            }
        }
    }
}
