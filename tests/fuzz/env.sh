# Flags of a coverage-guided libFuzzer build on stable rustc: SanitizerCoverage through LLVM's
# pass (`-C passes=sancov-module`) with inline 8-bit counters, the PC table and comparison
# tracing. Replaces the workspace's kernel flags (RUSTFLAGS wins over build.rustflags); with an
# explicit --target they stay off build scripts. Source this, then build with
#   cargo build --release --target x86_64-unknown-linux-gnu
export RUSTFLAGS="--cfg fuzzing -C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=4 -C llvm-args=-sanitizer-coverage-inline-8bit-counters -C llvm-args=-sanitizer-coverage-pc-table -C llvm-args=-sanitizer-coverage-trace-compares"
