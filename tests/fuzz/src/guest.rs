//! A Xen PV guest on backend-xen-pv's model, booted as the Xen board boots: the model's domain
//! builder, `start_info` parsed and validated, the layout, the P2M, the backend.

use backend_xen_pv::model::{DomainConfig, Model};
use backend_xen_pv::{Bootstrap, BootstrapLayout, Counted, P2m, StartInfo, Storage, XenPv};
use hal_core::Mmu;
use std::cell::RefCell;
use std::collections::HashMap;

/// What the board derives from the domain builder's hand-over, before the backend exists.
pub struct Boot {
    /// The model, with the domain built.
    pub model: Model,
    /// The P2M list (the backend borrows it).
    pub p2m: Vec<u64>,
    /// The layout `start_info` implies.
    pub layout: BootstrapLayout,
    /// The bootstrap tables and the initial mapping.
    pub bootstrap: Bootstrap,
    /// Pages of the domain.
    pub nr_pages: u64,
}

thread_local! {
    /// Freshly built domains by page count: building one validates its bootstrap tables, a
    /// large part of an execution; a copy of the built domain is the same domain.
    static BUILT: RefCell<HashMap<u64, Model>> = RefCell::new(HashMap::new());
}

/// Builds a domain of `nr_pages` pages on the model (a copy of one built before for that size)
/// and validates what it hands over.
pub fn boot(nr_pages: u64) -> Boot {
    let model = BUILT.with(|b| {
        b.borrow_mut()
            .entry(nr_pages)
            .or_insert_with(|| {
                Model::new(DomainConfig {
                    nr_pages,
                    ..DomainConfig::mib(0)
                })
            })
            .clone()
    });
    let image = model.boot().clone();
    let si = StartInfo::from_bytes(&image.start_info).expect("the model's start_info is valid");
    let layout = BootstrapLayout::new(&si, image.start_info_va, image.virt_base)
        .expect("the model's layout is Xen's");
    let bootstrap = Bootstrap::from_start_info(&si, &layout).expect("pt_base is mapped");
    Boot {
        model,
        p2m: image.p2m,
        layout,
        bootstrap,
        nr_pages: si.nr_pages(),
    }
}

/// The backend over `boot`'s model (counted by `model`), on `storage`.
pub fn backend<'a>(
    model: &'a Counted<Model>,
    p2m: &'a [u64],
    bootstrap: &Bootstrap,
    storage: &'a mut Storage,
) -> Mmu<XenPv<'a, Model>> {
    let p2m = P2m::new(p2m).expect("the model's P2M is valid");
    // SAFETY: the model's domain is as its start_info says (the model built it), and nothing
    // but this backend changes its page tables.
    let raw = unsafe { XenPv::new(model, p2m, bootstrap, storage) }.expect("the backend starts");
    Mmu::new(raw)
}
