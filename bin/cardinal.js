#!/usr/bin/env -S MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=4194304 MALLOC_TRIM_THRESHOLD_=16777216 node --max-semi-space-size=4 --initial-old-space-size=32 --no-allocation-site-pretenuring
'use strict';
// The command line is compiled to dist/ by `npm install` (the prepare script) or `npm run build`.
//
// The first line sets start-up settings for memory and garbage collection. `npx cardinal` and
// `bin/cardinal.js` get them, and `node bin/cardinal.js` does not.
// - `--max-semi-space-size=4` caps each of V8's two young-generation semi-spaces at 4 MB instead of
//   16 MB. On a store of 100,000 cards, two multigets of every card peaked at 132 MB of resident
//   memory with it and 157 MB without it. A PROPFIND Depth 1 of 10,000 cards took about 20% longer
//   (median 23 ms against 19 ms).
// - `MALLOC_MMAP_THRESHOLD_` fixes glibc's threshold for allocating with mmap at 4 MiB. Without it,
//   glibc raises the threshold after the first scrypt hash frees its 16 MiB, so each later hash
//   takes its 16 MiB from an allocator arena that keeps it. Six logins in a row left 112 MB
//   resident without a fixed threshold and 78 MB with one of 1 MiB or 4 MiB.
// - `MALLOC_TRIM_THRESHOLD_` lets glibc keep up to 16 MiB of freed memory instead of 128 KiB.
//   A multiget of 500 cards builds a response of about 700 KB twice over (in SQLite, then as a
//   Buffer). With glibc's default of 128 KiB, those pages went back to the system after each
//   request and the next one faulted them in again: about 500 page faults and 1 ms per multiget.
//   The 4 MiB mmap threshold keeps SQLite's buffer of more than 1 MiB in the heap, where it is reused.
// - `MALLOC_ARENA_MAX=1` gives every thread the one allocator arena, so that only one arena keeps
//   freed memory. With the two settings above and the default number of arenas, the benchmark's
//   peak resident memory at N = 100,000 was 148 MB. With one arena it was 130, 141 and 134 MB.
// - `--initial-old-space-size=32` lets V8's old generation grow to 32 MB before its first full
//   collections. Over 300 multigets of 500 cards, full collections fell from 49 to 16.
// - `--no-allocation-site-pretenuring` keeps V8 from allocating objects straight into the old
//   generation once objects from the same allocation site have outlived minor collections. In a
//   server that had taken a large upload, the rows of every later sync went there, and kept the
//   strings they point to alive. Median times of 500 syncs of 1,000 changes at N = 100,000 were
//   1.6 to 1.8 ms with the setting and 1.9 to 2.4 ms without it, over several runs, and each minor
//   collection moved 70 KB instead of 600 to 800 KB to the old generation.
// docs/benchmarks.md has the runs.
require('../dist/server/cli.js').main(process.argv.slice(2));
