//! Throughput probe for one weight type's matvec: cache-resident single thread
//! (the kernel's compute bound) against a streamed 14336×4096 matrix on the pool.
//! `cargo run --release -p ferrite-kernels --example matvec_probe -- q4_0 [threads]`
use ferrite_kernels::blocks::GgmlType;
use ferrite_kernels::dispatch::kernels;
use ferrite_kernels::matmul::matvec;
use std::time::Instant;

fn random_bytes(n: usize, seed: &mut u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed >> 24) as u8
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dtype = GgmlType::from_name(&args[1]).expect("dtype");
    let threads: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(2);
    let k = kernels(dtype).expect("kernels");
    let cols = 4096;
    let quant: fn(&[f32], &mut [u8]) = match dtype {
        GgmlType::F32 => |x, y| y.copy_from_slice(bytemuck::cast_slice(x)),
        _ => ferrite_kernels::dispatch::quantizer(dtype).expect("quantizer"),
    };
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let row_bytes = dtype.row_bytes(cols).unwrap();
    // Real blocks (valid scales): quantize random f32 rows.
    let make = |rows: usize, seed: &mut u64| {
        let mut w = vec![0u8; rows * row_bytes];
        let src: Vec<f32> = random_bytes(cols * 4, seed)
            .chunks(4)
            .map(|b| (i32::from_le_bytes(b.try_into().unwrap()) as f32) / 2e9)
            .collect();
        for r in w.chunks_mut(row_bytes) {
            quant(&src, r);
        }
        w
    };
    let x: Vec<f32> = (0..cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let pool1 = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let small_rows = (192 * 1024 / row_bytes).max(8);
    let w = make(small_rows, &mut seed);
    let mut y = vec![0f32; small_rows];
    let blocks = (small_rows * cols / dtype.block_len()) as f64;
    pool1.install(|| {
        // CPU time of this thread (ns), so other processes' load does not count.
        let cpu_ns = || -> f64 {
            std::fs::read_to_string("/proc/thread-self/schedstat").unwrap()
                .split_whitespace().next().unwrap().parse().unwrap()
        };
        let mut best = [f64::INFINITY; 2];
        for _ in 0..12 {
            for (v, single) in [false, true].into_iter().enumerate() {
                let _ = single;
                let reps = (50e6 / blocks) as usize;
                let t = cpu_ns();
                for _ in 0..reps {
                    matvec(&k, &w, small_rows, cols, &x, &mut y);
                }
                best[v] = best[v].min((cpu_ns() - t) / 1e9 / reps as f64);
            }
        }
        println!(
            "{dtype} cached, CPU time of 1 thread: vec_dot {:.1} M blocks/s, rows kernel {:.1} M blocks/s ({:.2}x)",
            blocks / best[0] / 1e6,
            blocks / best[1] / 1e6,
            best[0] / best[1]
        );
    });
    let rows = 14336;
    let w0 = make(rows, &mut seed);
    let huge = std::env::var("HUGE").is_ok();
    let w: &[u8] = if huge {
        let len = w0.len().next_multiple_of(2 << 20);
        let layout = std::alloc::Layout::from_size_align(len, 2 << 20).unwrap();
        let p = unsafe { std::alloc::alloc(layout) };
        let r = unsafe { libc::madvise(p.cast(), len, libc::MADV_HUGEPAGE) };
        assert_eq!(r, 0);
        let s = unsafe { std::slice::from_raw_parts_mut(p, w0.len()) };
        s.copy_from_slice(&w0);
        s
    } else {
        &w0
    };
    let mut y = vec![0f32; rows];
    let blocks = (rows * cols / dtype.block_len()) as f64;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let variants: Vec<usize> = std::env::var("PFS")
        .unwrap_or("1000000000,4096".into())
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    pool.install(|| {
        for _ in 0..5 {
            matvec(&k, w, rows, cols, &x, &mut y);
        }
        let reps = 10;
        let mut times = vec![Vec::new(); variants.len()];
        for _ in 0..21 {
            for (v, &pf) in variants.iter().enumerate() {
                let _ = pf;
                let t = Instant::now();
                for _ in 0..reps {
                    matvec(&k, w, rows, cols, &x, &mut y);
                }
                times[v].push(t.elapsed().as_secs_f64() / reps as f64);
            }
        }
        for (v, t) in variants.iter().zip(&mut times) {
            t.sort_by(f64::total_cmp);
            println!(
                "{dtype} pf={v} {threads}t: best {:.2} GB/s, median {:.2} GB/s",
                w.len() as f64 / t[0] / 1e9,
                w.len() as f64 / t[10] / 1e9,
            );
        }
        let _ = blocks;
    });
}
