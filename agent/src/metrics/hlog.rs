//! HdrHistogram interval logs (`.hlog`): the standard text format, V2 compressed histograms,
//! one `Tag=<workload>.<op>` per op (service time as `Tag=<workload>.<op>.service`).

use std::io::Write;

use flate2::{Compress, Compression, FlushCompress, Status};
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::{Counter, Histogram};

use super::Collector;

/// The V2 compressed format (`V2DeflateSerializer`'s), with one zlib compressor reused for every
/// histogram: hdrhistogram's builds a new one per histogram, ~300 KB to allocate and clear, which
/// was most of the cost of rendering a run's log.
struct ReusedDeflate {
    v2: V2Serializer,
    raw: Vec<u8>,
    out: Vec<u8>,
    z: Compress,
}

impl ReusedDeflate {
    fn new() -> ReusedDeflate {
        ReusedDeflate {
            v2: V2Serializer::new(),
            raw: Vec::new(),
            out: Vec::new(),
            z: Compress::new(Compression::default(), true),
        }
    }
}

/// hdrhistogram's cookie for V2 + DEFLATE.
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304 | 0x10;

impl Serializer for ReusedDeflate {
    type SerializeError = std::io::Error;

    fn serialize<T: Counter, W: Write>(
        &mut self,
        h: &Histogram<T>,
        writer: &mut W,
    ) -> std::io::Result<usize> {
        self.raw.clear();
        self.v2
            .serialize(h, &mut self.raw)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        self.out.clear();
        self.out
            .extend_from_slice(&V2_COMPRESSED_COOKIE.to_be_bytes());
        self.out.extend_from_slice(&[0; 4]);
        self.out.reserve(self.raw.len() / 2 + 64);
        self.z.reset();
        // Each round compresses into the spare capacity, then grows it; bounded.
        let mut done = false;
        for _ in 0..64 {
            let consumed = self.z.total_in() as usize;
            let st = self
                .z
                .compress_vec(&self.raw[consumed..], &mut self.out, FlushCompress::Finish)
                .map_err(std::io::Error::other)?;
            if st == Status::StreamEnd {
                done = true;
                break;
            }
            self.out.reserve(self.out.capacity().max(1024));
        }
        if !done {
            return Err(std::io::Error::other("histogram did not compress"));
        }
        let len = (self.out.len() - 8) as u32;
        self.out[4..8].copy_from_slice(&len.to_be_bytes());
        writer.write_all(&self.out)?;
        Ok(self.out.len())
    }
}

/// Standard base64 (the `.hlog` encoding); None on a bad character.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        buf = (buf << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Every interval of the collector as an interval log.
pub fn render(c: &Collector, comment: &str) -> std::io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::new();
    {
        let mut ser = ReusedDeflate::new();
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    use super::*;
    use crate::metrics::WorkloadMetrics;

    #[test]
    fn histograms_read_back_from_the_log() {
        let start = Instant::now();
        let m = WorkloadMetrics::new("w", vec!["get".into()], &[]);
        let mut c = Collector::new(vec![m.clone()], start);
        let rec = m.recorder(0);
        for i in 0..500u64 {
            let t = start + Duration::from_millis(i);
            rec.record(0, t, t, t + Duration::from_micros(100 + i * 7), Ok(()));
        }
        c.finish();
        let log = render(&c, "test").unwrap();
        let mut de = Deserializer::new();
        let mut seen = 0;
        let mut total = 0;
        for e in IntervalLogIterator::new(&log) {
            if let Ok(LogEntry::Interval(h)) = e {
                let b64 = h.encoded_histogram();
                let bytes = base64_decode(b64).expect("base64");
                let back: Histogram<u64> = de.deserialize(&mut &bytes[..]).unwrap();
                if h.tag().map(|t| t.as_str()) == Some("w.get") {
                    total += back.len();
                }
                seen += 1;
            }
        }
        assert_eq!(seen, 2 * c.intervals.len());
        assert_eq!(total, 500);
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert!(base64_decode("a*").is_none());
    }
}
