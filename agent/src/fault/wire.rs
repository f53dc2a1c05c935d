//! What both proxy modes share on the wire: the writer that delivers chunks at their time
//! (latency) and at the toxic's rate (bandwidth), closing late on a slow close; and closing a
//! socket with a reset instead of a FIN.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::toxic::{applies, Shared};

/// A chunk to write, and when (`None`: at once).
pub type Chunk = (Vec<u8>, Option<Instant>);

/// Write every chunk in order, each not before its time; throttle under the bandwidth toxic;
/// shut the write side when the channel closes (after the slow-close delay, if one is on).
pub async fn writer<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Chunk>,
    upstream: bool,
    s: Arc<Shared>,
) {
    while let Some((buf, at)) = rx.recv().await {
        if let Some(at) = at {
            tokio::time::sleep_until(at.into()).await;
        }
        if w.write_all(&buf).await.is_err() || w.flush().await.is_err() {
            break;
        }
        let bw = s.toxics.read().expect("toxics lock").bandwidth;
        if let Some((rate, dir)) = bw {
            if applies(dir, upstream) && rate > 0 {
                tokio::time::sleep(Duration::from_secs_f64(buf.len() as f64 / rate as f64)).await;
            }
        }
    }
    let slow = s.toxics.read().expect("toxics lock").slow_close;
    if let Some(d) = slow {
        tokio::time::sleep(d).await;
    }
    let _ = w.shutdown().await;
}

/// Make the socket `fd` close with RST (SO_LINGER 0): its peer sees "connection reset by peer"
/// when it is dropped.
pub fn reset_on_close(fd: RawFd) -> std::io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket the caller owns, with a correctly sized linger struct.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
