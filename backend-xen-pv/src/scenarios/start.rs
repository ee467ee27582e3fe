//! `XenPv::new` refusing a bootstrap that does not fit the P2M: the error names the operation
//! that failed (starting the backend, not `add_window`) and the true cause.

use std::boxed::Box;

use crate::mmu::{Cause, Op};
use crate::model::{DomainConfig, Model};
use crate::{Bootstrap, BootstrapLayout, P2m, P2mError, StartInfo, Storage, XenPv};
use hal_core::{Pfn, PfnRange};

fn bootstrap(model: &Model) -> Bootstrap {
    let image = model.boot();
    let si = StartInfo::from_bytes(&image.start_info).unwrap();
    let layout = BootstrapLayout::new(&si, image.start_info_va, image.virt_base).unwrap();
    Bootstrap::from_start_info(&si, &layout).unwrap()
}

fn start(model: Model, list: &[u64], boot: &Bootstrap) -> crate::XenPvError {
    let p2m = P2m::new(list).unwrap();
    let mut storage = Box::new(Storage::new());
    let hv = crate::Counted::new(model);
    // SAFETY: the model's domain; the bootstrap is deliberately wrong, and `new` must refuse
    // it before it touches anything.
    match unsafe { XenPv::new(&hv, p2m, boot, &mut storage) } {
        Ok(_) => panic!("a bootstrap outside the P2M was accepted"),
        Err(e) => e,
    }
}

#[test]
fn bootstrap_tables_beyond_the_p2m_are_refused_by_new_as_a_p2m_error() {
    let model = Model::new(DomainConfig::mib(16));
    let mut boot = bootstrap(&model);
    let list = model.boot().p2m.clone();
    let n = list.len() as u64;
    let pfn = |p| Pfn::new(p).unwrap();
    boot.tables = PfnRange::new(pfn(n - 2), n + 3).unwrap();
    boot.root = pfn(n - 2);
    let e = start(model, &list, &boot);
    assert_eq!(e.op, Op::New, "{e}");
    assert_eq!(
        e.cause,
        Cause::P2m(P2mError::PfnOutOfRange {
            pfn: n,
            nr_pages: n
        })
    );
    assert_eq!(
        std::format!("{e}"),
        "xen-pv starting the backend: pfn 0x1000 is not below the domain's 0x1000 pages"
    );
}

#[test]
fn a_root_outside_the_bootstrap_tables_is_not_called_a_p2m_error() {
    let model = Model::new(DomainConfig::mib(16));
    let mut boot = bootstrap(&model);
    let list = model.boot().p2m.clone();
    boot.root = Pfn::new(boot.tables.end() + 1).unwrap();
    let root = boot.root.as_u64();
    let e = start(model, &list, &boot);
    assert_eq!(
        (e.op, e.cause),
        (Op::New, Cause::RootOutsideTables { root })
    );
}
