//! Parallel, deterministic compression of a byte stream: the stream is cut into fixed 1 MiB
//! chunks (by offset, never by timing), each chunk is compressed on its own by a pool of
//! workers into a complete gzip member (libdeflate) or zstd frame, and the members are written
//! in order. Concatenated gzip members are one valid gzip stream (RFC 1952 §2.2; Go's
//! `compress/gzip`, zlib and Python read them as one), and zstd frames likewise; so the output
//! bytes depend only on the input and the level, never on how many threads ran.
//!
//! The uncompressed stream is hashed (diff_id) by the producer while the workers compress; the
//! compressed stream is hashed and counted by the writer. Memory is bounded by the chunks in
//! flight (a few per worker). Workers are a [`Workers`] pool that layers built at the same time
//! share.

use crate::config::Compression;
use crate::digest::{DiffId, Digest, HashingWriter};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

/// Bytes of input per independently compressed chunk.
pub const CHUNK: usize = 1 << 20;

/// How layers are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// gzip (RFC 1952), levels 1-12 (libdeflate's scale; 6 is the default).
    Gzip(u32),
    /// zstd (RFC 8878), levels 1-19.
    Zstd(i32),
}

impl Codec {
    /// The OCI media type of a layer compressed this way.
    pub fn media_type(&self) -> &'static str {
        match self {
            Codec::Gzip(_) => crate::spec::MEDIA_TYPE_LAYER_GZIP,
            Codec::Zstd(_) => crate::spec::MEDIA_TYPE_LAYER_ZSTD,
        }
    }
}

impl From<Compression> for Codec {
    fn from(c: Compression) -> Self {
        match c {
            Compression::Gzip { level } => Codec::Gzip(level),
            Compression::Zstd { level } => Codec::Zstd(level),
        }
    }
}

impl Default for Codec {
    fn default() -> Self {
        Codec::Gzip(DEFAULT_GZIP_LEVEL)
    }
}

/// Default gzip level: the config's default (libdeflate 6 gives smaller output than `pigz -6`
/// at higher speed).
pub const DEFAULT_GZIP_LEVEL: u32 = Compression::DEFAULT_GZIP_LEVEL;

/// Compress one chunk into a self-contained gzip member or zstd frame.
pub fn compress_chunk(codec: Codec, input: &[u8]) -> io::Result<Vec<u8>> {
    match codec {
        Codec::Gzip(level) => {
            let lvl = libdeflater::CompressionLvl::new(level as i32).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid gzip level {level}"),
                )
            })?;
            let mut c = libdeflater::Compressor::new(lvl);
            let mut out = vec![0u8; c.gzip_compress_bound(input.len())];
            let n = c
                .gzip_compress(input, &mut out)
                .map_err(|e| io::Error::other(format!("gzip: {e:?}")))?;
            out.truncate(n);
            Ok(out)
        }
        Codec::Zstd(level) => zstd::bulk::compress(input, level),
    }
}

/// Where the compressed stream goes, with its digest and size computed on the way.
pub struct Output<W: Write> {
    inner: HashingWriter<W>,
}

/// The result of a compression run.
pub struct Compressed<W> {
    /// The sink, flushed.
    pub sink: W,
    /// Digest of the compressed bytes.
    pub digest: Digest,
    /// Size of the compressed bytes.
    pub size: u64,
    /// Digest of the uncompressed bytes.
    pub diff_id: DiffId,
}

/// The producer's side: a `Write` that cuts what it gets into chunks and hands them out.
pub struct ChunkWriter<'a> {
    buf: Vec<u8>,
    next: u64,
    jobs: &'a SyncSender<Job>,
    results: SyncSender<(u64, io::Result<Vec<u8>>)>,
    codec: Codec,
    hasher: Sha256,
}

impl ChunkWriter<'_> {
    fn send(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.hasher.update(&full);
        self.jobs
            .send((self.codec, self.next, full, self.results.clone()))
            .map_err(|_| io::Error::other("the compression workers stopped"))?;
        self.next += 1;
        Ok(())
    }
}

impl Write for ChunkWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a compression run failed: the producer's own error, or compressing / writing.
#[derive(Debug)]
pub enum StreamError<E> {
    /// The producer failed.
    Produce(E),
    /// Compressing or writing the output failed.
    Io(io::Error),
}

/// A compression job: the codec, the chunk's index and bytes, where to send the result.
type Job = (Codec, u64, Vec<u8>, SyncSender<(u64, io::Result<Vec<u8>>)>);

/// A pool of compression workers, shared by every layer built at the same time so that the
/// cores are used but never oversubscribed.
pub struct Workers {
    tx: Option<SyncSender<Job>>,
    handles: Vec<std::thread::JoinHandle<()>>,
    threads: usize,
}

impl Workers {
    /// Start `threads` workers.
    pub fn new(threads: usize) -> Workers {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Job>(threads * 2);
        let rx = std::sync::Arc::new(Mutex::new(rx));
        let handles = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok((codec, idx, data, results)) = job else {
                        return;
                    };
                    // A layer that gave up no longer listens: nothing to do.
                    let _ = results.send((idx, compress_chunk(codec, &data)));
                })
            })
            .collect();
        Workers {
            tx: Some(tx),
            handles,
            threads,
        }
    }

    /// How many workers run.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.tx.take();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// Run `produce` (which writes the uncompressed stream into the given writer), compressing on
/// `workers`, writing the compressed stream to `sink`. The bytes written to `sink` are the same
/// whatever the number of workers or the other layers sharing them.
pub fn compress_stream<W, E>(
    codec: Codec,
    workers: &Workers,
    sink: W,
    produce: impl FnOnce(&mut ChunkWriter<'_>) -> Result<(), E>,
) -> Result<Compressed<W>, StreamError<E>>
where
    W: Write + Send,
{
    let jobs = workers
        .tx
        .as_ref()
        .ok_or_else(|| StreamError::Io(io::Error::other("the compression workers stopped")))?;
    let (res_tx, res_rx) = sync_channel::<(u64, io::Result<Vec<u8>>)>(workers.threads * 4);
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            write_in_order(
                res_rx,
                Output {
                    inner: HashingWriter::new(sink),
                },
            )
        });
        let mut chunks = ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            next: 0,
            jobs,
            results: res_tx,
            codec,
            hasher: Sha256::new(),
        };
        let produced = produce(&mut chunks);
        let last = if produced.is_ok() && (!chunks.buf.is_empty() || chunks.next == 0) {
            chunks.send()
        } else {
            Ok(())
        };
        let ChunkWriter {
            hasher, results, ..
        } = chunks;
        // The writer stops when every result sender is gone: ours, then the jobs' in flight.
        drop(results);
        let diff_id = DiffId::of_hash(hasher.finalize().into());
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the compressed-stream writer panicked")));
        produced.map_err(StreamError::Produce)?;
        last.map_err(StreamError::Io)?;
        let (sink, digest, size) = written.map_err(StreamError::Io)?;
        Ok(Compressed {
            sink,
            digest,
            size,
            diff_id,
        })
    })
}

fn write_in_order<W: Write>(
    results: Receiver<(u64, io::Result<Vec<u8>>)>,
    mut out: Output<W>,
) -> io::Result<(W, Digest, u64)> {
    let mut pending: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut next = 0u64;
    let mut failure = None;
    for (idx, r) in results {
        match r {
            Ok(bytes) => {
                pending.insert(idx, bytes);
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
        while let Some(bytes) = pending.remove(&next) {
            if failure.is_none() {
                if let Err(e) = out.inner.write_all(&bytes) {
                    failure = Some(e);
                }
            }
            next += 1;
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if !pending.is_empty() {
        return Err(io::Error::other("a compressed chunk went missing"));
    }
    out.inner.flush()?;
    Ok(out.inner.finish_digest())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn codec_from_config() {
        assert_eq!(Codec::from(Compression::default()), Codec::default());
        assert_eq!(Codec::from(Compression::Gzip { level: 9 }), Codec::Gzip(9));
        assert_eq!(Codec::from(Compression::Zstd { level: 3 }), Codec::Zstd(3));
    }

    fn data(n: usize) -> Vec<u8> {
        let mut x = 0x1234_5678_9abc_def1u64;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 3 == 0 {
                    (x % 7) as u8 + b'a'
                } else {
                    b"layer data "[i % 11]
                }
            })
            .collect()
    }

    fn run(codec: Codec, threads: usize, input: &[u8]) -> Compressed<Vec<u8>> {
        compress_stream::<_, io::Error>(codec, &Workers::new(threads), Vec::new(), |w| {
            // odd write sizes, to cross chunk boundaries
            for part in input.chunks(77_777) {
                w.write_all(part)?;
            }
            Ok(())
        })
        .map_err(|e| match e {
            StreamError::Produce(e) | StreamError::Io(e) => e,
        })
        .unwrap()
    }

    #[test]
    fn output_is_the_same_for_any_thread_count_and_decompresses() {
        let input = data(3 * CHUNK + 12_345);
        for codec in [Codec::Gzip(6), Codec::Gzip(1), Codec::Zstd(3)] {
            let one = run(codec, 1, &input);
            let four = run(codec, 4, &input);
            assert_eq!(one.sink, four.sink, "{codec:?}");
            assert_eq!(one.digest, Digest::of(&one.sink));
            assert_eq!(one.size, one.sink.len() as u64);
            assert_eq!(one.diff_id, DiffId::of(&input));
            let mut back = Vec::new();
            match codec {
                Codec::Gzip(_) => {
                    flate2::read::MultiGzDecoder::new(&one.sink[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Codec::Zstd(_) => {
                    zstd::stream::read::Decoder::new(&one.sink[..])
                        .unwrap()
                        .read_to_end(&mut back)
                        .unwrap();
                }
            }
            assert!(back == input, "{codec:?} round trip");
        }
    }

    #[test]
    fn empty_and_tiny_inputs_give_one_member() {
        let empty = run(Codec::Gzip(6), 2, b"");
        assert_eq!(&empty.sink[..3], &[0x1f, 0x8b, 8]);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&empty.sink[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
        let exact = run(Codec::Gzip(6), 2, &data(CHUNK));
        let members = exact
            .sink
            .windows(3)
            .filter(|w| *w == [0x1f, 0x8b, 8])
            .count();
        assert!(members >= 1);
    }

    #[test]
    fn producer_errors_stop_everything() {
        let r =
            compress_stream::<_, io::Error>(Codec::Gzip(6), &Workers::new(2), Vec::new(), |w| {
                w.write_all(&data(2 * CHUNK))?;
                Err(io::Error::other("source vanished"))
            });
        match r {
            Err(StreamError::Produce(e)) => assert_eq!(e.to_string(), "source vanished"),
            _ => panic!("the producer's error must come back"),
        }
    }
}
