//! HdrHistogram interval logs (`.hlog`): the standard text format, V2 compressed histograms,
//! one `Tag=<workload>.<op>` per op (service time as `Tag=<workload>.<op>.service`).

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use super::Collector;

/// Every interval of the collector as an interval log.
pub fn render(c: &Collector, comment: &str) -> std::io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::new();
    {
        let mut ser = V2DeflateSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment(comment)
            .with_start_time(c.started_wall)
            .with_base_time(c.started_wall)
            .with_max_value_divisor(1000.0);
        let mut w = builder
            .begin_log_with(&mut buf, &mut ser)
            .map_err(std::io::Error::other)?;
        let names: Vec<Vec<String>> = c.workloads.iter().map(|m| m.op_names()).collect();
        let mut de = Deserializer::new();
        for iv in &c.intervals {
            let dur = iv.end.saturating_sub(iv.start);
            for o in &iv.ops {
                if o.ok == 0 {
                    continue;
                }
                let base = format!(
                    "{}.{}",
                    c.workloads[o.workload].id,
                    names[o.workload]
                        .get(o.op)
                        .map(String::as_str)
                        .unwrap_or("op")
                );
                for (bytes, tag) in [
                    (&o.corrected, base.clone()),
                    (&o.service, format!("{base}.service")),
                ] {
                    let h: Histogram<u64> = de
                        .deserialize(&mut &bytes[..])
                        .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
                    let tag = Tag::new(&tag)
                        .ok_or_else(|| std::io::Error::other(format!("bad tag {tag:?}")))?;
                    w.write_histogram(&h, iv.start, dur, Some(tag))
                        .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
                }
            }
        }
    }
    Ok(buf)
}
