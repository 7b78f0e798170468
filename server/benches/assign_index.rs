//! Assignment micro-benchmark: lookups/s of the in-memory H3 + exact index against one PostGIS
//! `gridmap_grid_at` (`ST_Covers`) query per point, on the demo city (267 grids) and `--scale 10`.
//!
//! Needs a database with the demo city: `GRIDMAP_BENCH_DB` (default
//! `postgres://postgres@127.0.0.1:5432/gridmap_bench`, seeded with `gridmap seed --demo`) and,
//! optionally, `GRIDMAP_BENCH_DB_SCALE10` (seeded with `--scale 10`) and `GRIDMAP_BENCH_DB_DENSE`
//! (the demo city with ~220 vertices per grid). See bench/RESULTS.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gridmap_server::reports::GridIndex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn points(index: &GridIndex, n: usize) -> Vec<(f64, f64)> {
    let (minx, miny, maxx, maxy) =
        index.grids().iter().fold((f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY), |b, g| {
            (b.0.min(g.bbox[0]), b.1.min(g.bbox[1]), b.2.max(g.bbox[2]), b.3.max(g.bbox[3]))
        });
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    (0..n).map(|_| (rng.random_range(minx..maxx), rng.random_range(miny..maxy))).collect()
}

fn bench_city(c: &mut Criterion, label: &str, url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let Ok(pool) = runtime.block_on(sqlx::PgPool::connect(url)) else {
        eprintln!("SKIPPED {label}: cannot connect to {url}");
        return;
    };
    let index = runtime.block_on(GridIndex::load(&pool)).expect("index");
    if index.grid_count() == 0 {
        eprintln!("SKIPPED {label}: no grids in {url}");
        return;
    }
    let sample = points(&index, 10_000);
    let mut group = c.benchmark_group(format!("assign/{label}/{}grids", index.grid_count()));
    group.throughput(Throughput::Elements(sample.len() as u64));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("in_memory_index", |b| {
        b.iter(|| {
            let mut hits = 0usize;
            for (x, y) in &sample {
                hits += usize::from(index.lookup(black_box(*x), black_box(*y)).is_some());
            }
            hits
        });
    });
    let few = &sample[..200];
    group.throughput(Throughput::Elements(few.len() as u64));
    group.sample_size(10);
    group.bench_function("postgis_query_per_point", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut hits = 0usize;
                for (x, y) in few {
                    let id: Option<i64> =
                        sqlx::query_scalar("select gridmap_grid_at(ST_SetSRID(ST_MakePoint($1, $2), 4326))")
                            .bind(x)
                            .bind(y)
                            .fetch_one(&pool)
                            .await
                            .expect("query");
                    hits += usize::from(id.is_some());
                }
                hits
            })
        });
    });
    group.finish();
}

fn assign(c: &mut Criterion) {
    let url =
        std::env::var("GRIDMAP_BENCH_DB").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/gridmap_bench".into());
    bench_city(c, "demo", &url);
    if let Ok(url) = std::env::var("GRIDMAP_BENCH_DB_SCALE10") {
        bench_city(c, "scale10", &url);
    }
    // The demo city's grids are rectangles; planner-drawn grids follow streets with hundreds of
    // vertices. The same city with its edges cut into ~5 m pieces (bench/reports.sh makes it).
    if let Ok(url) = std::env::var("GRIDMAP_BENCH_DB_DENSE") {
        bench_city(c, "dense", &url);
    }
}

criterion_group!(benches, assign);
criterion_main!(benches);
