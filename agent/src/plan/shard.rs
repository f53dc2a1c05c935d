//! Which share of a sharded run this agent is: `INDEX/COUNT`, from `--shard` or a Kubernetes
//! Indexed Job. How a plan becomes one shard is `scenario::shard`.

use std::fmt;

/// Shard `index` of `count` (0-based), written `index/count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range for {count} shards (indexes are 0..{count})"
            ));
        }
        Ok(Shard { index, count })
    }

    /// `"2/8"` → shard 2 of 8.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("shard {s:?}: write INDEX/COUNT, e.g. 0/4"))?;
        let num = |x: &str, what: &str| {
            x.trim()
                .parse::<u32>()
                .map_err(|_| format!("shard {s:?}: the {what} {x:?} is not a whole number"))
        };
        Shard::new(num(i, "index")?, num(n, "count")?)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard a `run` is: `--shard INDEX/COUNT`, else `JOB_COMPLETION_INDEX` (set by Kubernetes
/// in an Indexed Job) with `--shard-count` / `VALKEY_CHAOS_SHARDS`. `None`: not sharded.
pub fn resolve(
    flag: Option<&str>,
    count: Option<u32>,
    job_index: Option<&str>,
) -> Result<Option<Shard>, String> {
    if let Some(f) = flag {
        let s = Shard::parse(f)?;
        if let Some(n) = count.filter(|n| *n != s.count) {
            return Err(format!(
                "--shard {s} disagrees with a shard count of {n} (--shard-count / VALKEY_CHAOS_SHARDS)"
            ));
        }
        return Ok(Some(s));
    }
    let Some(n) = count else {
        return Ok(None);
    };
    let Some(i) = job_index.map(str::trim).filter(|i| !i.is_empty()) else {
        return Err(format!(
            "a shard count of {n} was given but not this agent's index: pass --shard INDEX/{n} \
             (or run in a Kubernetes Indexed Job, which sets JOB_COMPLETION_INDEX)"
        ));
    };
    let i = i
        .parse::<u32>()
        .map_err(|_| format!("JOB_COMPLETION_INDEX {i:?} is not a whole number"))?;
    Shard::new(i, n).map(Some)
}

/// Check that runs about to be merged are one run: either none of them is a shard, or they are
/// shards of one `n`, each at most once. `runs` holds each run's name (for messages) and its
/// summary's `shard`. Returns `n` and the shards missing (a run whose agent failed or lost its
/// host: the merged verdict fails naming them); an error for inputs that are not one run.
pub fn check_complete(
    runs: &[(String, Option<String>)],
) -> Result<Option<(u32, Vec<u32>)>, String> {
    let Some((first, first_shard)) = runs.iter().find_map(|(n, s)| s.as_ref().map(|s| (n, s)))
    else {
        return Ok(None);
    };
    let first = Shard::parse(first_shard).map_err(|e| format!("{first}: {e}"))?;
    let mut seen: Vec<Option<&str>> = vec![None; first.count as usize];
    for (name, s) in runs {
        let Some(s) = s else {
            return Err(format!(
                "{name} is not a shard but other inputs are shards of {}: merge all shards of \
                 one sharded run, and only those",
                first.count
            ));
        };
        let s = Shard::parse(s).map_err(|e| format!("{name}: {e}"))?;
        if s.count != first.count {
            return Err(format!(
                "{name} is shard {s} but other inputs are shards of {}: merge the shards of one \
                 sharded run",
                first.count
            ));
        }
        if let Some(other) = seen[s.index as usize].replace(name) {
            return Err(format!(
                "shard {s} appears twice ({other} and {name}): give each shard's output once"
            ));
        }
    }
    let missing = (0..first.count)
        .filter(|i| seen[*i as usize].is_none())
        .collect();
    Ok(Some((first.count, missing)))
}

/// `shard 1/3 is missing` / `shards 1/4, 3/4 are missing`.
pub fn missing_text(missing: &[u32], count: u32) -> String {
    let names: Vec<String> = missing.iter().map(|i| format!("{i}/{count}")).collect();
    if names.len() > 1 {
        format!("shards {} are missing", names.join(", "))
    } else {
        format!("shard {} is missing", names.join(""))
    }
}

/// `total` dealt out over `count` shards: shard `index` gets `total / count`, plus one if
/// `index < total % count`. The shares add up to `total`.
pub fn share(total: u64, index: u32, count: u32) -> u64 {
    let (i, n) = (u64::from(index), u64::from(count.max(1)));
    total / n + u64::from(i < total % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for total in [0u64, 1, 2, 7, 10, 1000, 1001] {
            for count in 1..=9 {
                let sum: u64 = (0..count).map(|i| share(total, i, count)).sum();
                assert_eq!(sum, total, "{total} over {count}");
            }
        }
        assert_eq!(share(10, 0, 3), 4);
        assert_eq!(share(10, 2, 3), 3);
    }

    #[test]
    fn parse_and_resolve() {
        assert_eq!(Shard::parse("2/8").unwrap(), Shard { index: 2, count: 8 });
        assert_eq!(Shard::parse("2/8").unwrap().to_string(), "2/8");
        assert!(Shard::parse("8/8").unwrap_err().contains("out of range"));
        assert!(Shard::parse("1/0").unwrap_err().contains("at least 1"));
        assert!(Shard::parse("1").unwrap_err().contains("INDEX/COUNT"));
        assert!(Shard::parse("a/2").unwrap_err().contains("index"));
        assert_eq!(resolve(None, None, Some("3")).unwrap(), None);
        assert_eq!(
            resolve(None, Some(4), Some("3")).unwrap(),
            Some(Shard { index: 3, count: 4 })
        );
        assert_eq!(
            resolve(Some("1/2"), None, Some("0")).unwrap(),
            Some(Shard { index: 1, count: 2 })
        );
        assert!(resolve(Some("1/2"), Some(3), None)
            .unwrap_err()
            .contains("disagrees"));
        assert!(resolve(None, Some(4), None)
            .unwrap_err()
            .contains("JOB_COMPLETION_INDEX"));
        assert!(resolve(None, Some(4), Some("4"))
            .unwrap_err()
            .contains("out of range"));
    }

    #[test]
    fn merge_needs_one_run_and_names_missing_shards() {
        let runs = |v: &[(&str, Option<&str>)]| -> Vec<(String, Option<String>)> {
            v.iter()
                .map(|(n, s)| (n.to_string(), s.map(str::to_string)))
                .collect()
        };
        assert_eq!(check_complete(&runs(&[("a", None), ("b", None)])), Ok(None));
        assert_eq!(
            check_complete(&runs(&[("b", Some("1/2")), ("a", Some("0/2"))])),
            Ok(Some((2, vec![])))
        );
        assert_eq!(
            check_complete(&runs(&[("a", Some("0/3")), ("c", Some("2/3"))])),
            Ok(Some((3, vec![1])))
        );
        assert_eq!(missing_text(&[1], 3), "shard 1/3 is missing");
        assert_eq!(
            check_complete(&runs(&[("a", Some("0/4"))])),
            Ok(Some((4, vec![1, 2, 3])))
        );
        assert_eq!(
            missing_text(&[1, 2, 3], 4),
            "shards 1/4, 2/4, 3/4 are missing"
        );
        let e = check_complete(&runs(&[("a", Some("1/2")), ("b", Some("1/2"))])).unwrap_err();
        assert!(e.contains("shard 1/2 appears twice (a and b)"), "{e}");
        let e = check_complete(&runs(&[("a", Some("0/2")), ("b", Some("1/3"))])).unwrap_err();
        assert!(e.contains("b is shard 1/3"), "{e}");
        let e = check_complete(&runs(&[("a", None), ("b", Some("0/1"))])).unwrap_err();
        assert!(e.contains("a is not a shard"), "{e}");
    }
}
