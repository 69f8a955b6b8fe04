//! Framing benchmarks for `trama-protocol`: what the length prefix costs.
//!
//! - `pipe_64KiB`: 256 frames of 64 KiB written with [`FrameWriter`] into a
//!   reused `Vec<u8>` and read back with [`FrameReader::read_frame_into`],
//!   against the same payload bytes moved with plain `write_all` /
//!   `read_exact` (no header). Target: framed >= 0.9x unframed throughput.
//! - `frame_64B`: one 64-byte frame through [`FrameConfig::encode`] +
//!   [`Decoder::decode`], and through [`FrameWriter::write_frame`] +
//!   [`FrameReader::read_frame_into`]. Target: under 50 ns each.
//! - `decoder_1MiB`: a [`Decoder`] over 1 MiB of back-to-back 64-byte frames,
//!   given whole and in 4 KiB pieces (as a socket would deliver them), in frames/s.
//!
//! Run with `cargo bench -p trama-protocol --bench framing`; every buffer is
//! allocated once, outside the timed loop, so the numbers are the framing work
//! and the copies, not the allocator.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::io::{Read, Write};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trama_protocol::{Decoder, FrameConfig, FrameReader, FrameWriter};

const BIG: usize = 64 * 1024;
const BIG_FRAMES: usize = 256;
const SMALL: usize = 64;
const MIB: usize = 1024 * 1024;

/// A payload whose bytes are not all equal, so nothing can special-case zeros.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

fn pipe_64kib(c: &mut Criterion) {
    let cfg = FrameConfig::default();
    let data = payload(BIG);
    let total = (BIG * BIG_FRAMES) as u64;

    let mut group = c.benchmark_group("pipe_64KiB");
    group.throughput(Throughput::Bytes(total));

    // Framed: FrameWriter into a reused Vec, FrameReader::read_frame_into into one reused buffer.
    let mut writer = FrameWriter::new(
        Vec::with_capacity(BIG_FRAMES * (BIG + cfg.header_len())),
        cfg,
    );
    let mut frame = Vec::with_capacity(BIG);
    group.bench_function("framed", |b| {
        b.iter(|| {
            writer.get_mut().clear();
            for _ in 0..BIG_FRAMES {
                writer.write_frame(black_box(&data)).unwrap();
            }
            let mut reader = FrameReader::new(&writer.get_ref()[..], cfg);
            let mut got = 0;
            while reader.read_frame_into(&mut frame).unwrap() {
                got += frame.len();
            }
            assert_eq!(got as u64, total);
            black_box(&frame);
        });
    });

    // Unframed: the same payload bytes with write_all and read_exact, no header.
    let mut wire: Vec<u8> = Vec::with_capacity(BIG_FRAMES * BIG);
    let mut chunk = vec![0u8; BIG];
    group.bench_function("unframed", |b| {
        b.iter(|| {
            wire.clear();
            for _ in 0..BIG_FRAMES {
                wire.write_all(black_box(&data)).unwrap();
            }
            let mut reader = &wire[..];
            let mut got = 0;
            for _ in 0..BIG_FRAMES {
                reader.read_exact(&mut chunk).unwrap();
                got += chunk.len();
            }
            assert_eq!(got as u64, total);
            black_box(&chunk);
        });
    });
    group.finish();
}

fn frame_64b(c: &mut Criterion) {
    let cfg = FrameConfig::default();
    let data = payload(SMALL);

    let mut group = c.benchmark_group("frame_64B");
    group.throughput(Throughput::Elements(1));

    let mut out = Vec::with_capacity(SMALL + cfg.header_len());
    let mut decoder = Decoder::new(cfg);
    group.bench_function("encode+decode", |b| {
        b.iter(|| {
            out.clear();
            cfg.encode(black_box(&data), &mut out).unwrap();
            let mut got = 0;
            decoder.decode(&out, |f| got += f.len()).unwrap();
            assert_eq!(black_box(got), SMALL);
        });
    });

    let mut writer = FrameWriter::new(Vec::with_capacity(SMALL + cfg.header_len()), cfg);
    let mut frame = Vec::with_capacity(SMALL);
    group.bench_function("write_frame+read_frame_into", |b| {
        b.iter(|| {
            writer.get_mut().clear();
            writer.write_frame(black_box(&data)).unwrap();
            let mut reader = FrameReader::new(&writer.get_ref()[..], cfg);
            assert!(reader.read_frame_into(&mut frame).unwrap());
            assert_eq!(black_box(&frame).len(), SMALL);
        });
    });
    group.finish();
}

fn decoder_1mib(c: &mut Criterion) {
    let cfg = FrameConfig::default();
    let data = payload(SMALL);
    let frames = MIB / (SMALL + cfg.header_len());
    let mut wire = Vec::with_capacity(MIB);
    for _ in 0..frames {
        cfg.encode(&data, &mut wire).unwrap();
    }

    let mut group = c.benchmark_group("decoder_1MiB");
    group.throughput(Throughput::Elements(frames as u64));

    let mut decoder = Decoder::new(cfg);
    group.bench_function("whole", |b| {
        b.iter(|| {
            let mut n = 0;
            decoder.decode(black_box(&wire), |f| n += f.len()).unwrap();
            assert_eq!(n, frames * SMALL);
        });
    });

    // 4 KiB pieces: 4096 is not a multiple of 68, so frames straddle pieces
    // and the decoder's assembly path runs about once per piece.
    group.bench_function("4KiB_pieces", |b| {
        b.iter(|| {
            let mut n = 0;
            for piece in black_box(&wire).chunks(4096) {
                decoder.decode(piece, |f| n += f.len()).unwrap();
            }
            assert_eq!(n, frames * SMALL);
            assert!(decoder.is_idle());
        });
    });
    group.finish();
}

criterion_group!(benches, pipe_64kib, frame_64b, decoder_1mib);
criterion_main!(benches);
