// There is one handle to the live root: it cannot be cloned.
use hal_core::LiveRoot;

fn two(live: &LiveRoot) -> LiveRoot {
    live.clone()
}

fn main() {}
