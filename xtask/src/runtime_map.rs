//! The `runtime_map` example's result line, `RESULT runtime_map Figures { seed: .., ops: ..,
//! ... maps_by_size: [.., .., ..] }`, judged against what the runner knows: the seed and the
//! operation count it passed on the guest command line, the machine's memory, the page sizes
//! the board has, and (under Xen) the hypercall bound the backend documents.

use crate::boot::Board;

/// The marker the line starts with (after the log level).
pub const MARKER: &str = "RESULT runtime_map Figures {";

/// `name: value` fields of the line; a `[a, b, c]` value is kept as its text.
pub fn fields(line: &str) -> Result<Vec<(String, String)>, String> {
    let start = line.find(MARKER).ok_or("no RESULT runtime_map marker")? + MARKER.len();
    let body = &line[start..];
    let body = &body[..body.rfind('}').ok_or("no closing `}`")?];
    let mut out = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once(':').ok_or("expected `name: value`")?;
        let after = after.trim_start();
        let (value, tail) = if let Some(list) = after.strip_prefix('[') {
            list.split_once(']').ok_or("unclosed `[`")?
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        out.push((key.trim().to_string(), value.trim().to_string()));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Ok(out)
}

/// The value of the guest argument `key=` in `args`.
pub fn guest_arg(args: &[&str], key: &str) -> Option<u64> {
    args.iter()
        .find_map(|a| a.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// Checks a `runtime_map` run's line. `args`: the guest command line the runner passed;
/// `mem`: the machine's (dom0's) memory in bytes.
pub fn check(board: Board, args: &[&str], mem: u64, line: &str) -> Result<(), String> {
    let f = fields(line)?;
    let get = |name: &str| -> Result<u64, String> {
        f.iter()
            .find(|(k, _)| k == name)
            .ok_or_else(|| format!("no {name} in {line:?}"))?
            .1
            .parse()
            .map_err(|_| format!("{name} is no number in {line:?}"))
    };
    let sizes: Vec<u64> = f
        .iter()
        .find(|(k, _)| k == "maps_by_size")
        .ok_or("no maps_by_size")?
        .1
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| "maps_by_size: not numbers".to_string())
        })
        .collect::<Result<_, _>>()?;
    let seed = guest_arg(args, "runtime_map.seed").ok_or("the test passes no seed")?;
    let ops = guest_arg(args, "runtime_map.ops").ok_or("the test passes no ops")?;
    if get("seed")? != seed || get("ops")? != ops {
        return Err(format!(
            "the run used seed {} and {} ops, the runner passed {seed} and {ops}",
            get("seed")?,
            get("ops")?
        ));
    }
    if ops < 10_000 {
        return Err(format!("{ops} operations: at least 10,000 are asked for"));
    }
    if get("maps")? + get("unmaps")? + get("protects")? != ops {
        return Err("maps + unmaps + protects differ from the operations run".into());
    }
    // The window lies in one root slot: the mapper keeps at most the level-3 table it made
    // there (a table in a root slot is never freed: another root may share it).
    let kept = get("tables_kept")?;
    if kept > 1 {
        return Err(format!(
            "{kept} level-3 tables kept for a window in one root slot"
        ));
    }
    let (before, after) = (get("free_before")?, get("free_after")?);
    if before != after + 4096 * kept {
        return Err(format!(
            "frames not conserved: {before} free bytes before, {after} after, {kept} tables kept"
        ));
    }
    // What memblock had free must be most of the machine (the image and boot data aside).
    if before > mem || before + (16 << 20) < mem {
        return Err(format!("{before} free bytes on a machine of {mem}"));
    }
    let (alloc, freed) = (get("tables_allocated")?, get("tables_freed")?);
    if alloc == 0 || alloc != freed + kept {
        return Err(format!(
            "tables: {alloc} allocated, {freed} freed, {kept} kept"
        ));
    }
    if get("faults_caught")? == 0 || get("pages_checked")? < ops {
        return Err("too few pages checked, or no expected fault caught".into());
    }
    let (hc, entries, flushes) = (
        get("hypercalls")?,
        get("hypercall_entries")?,
        get("flushes")?,
    );
    match board {
        Board::Native => {
            if sizes.len() != 3 || sizes.contains(&0) {
                return Err(format!("bare metal must map every page size: {sizes:?}"));
            }
            if hc != 0 {
                return Err(format!("{hc} hypercalls on bare metal"));
            }
        }
        Board::Xen | Board::XenDomU => {
            if sizes.len() != 3 || sizes[0] == 0 || sizes[1] != 0 || sizes[2] != 0 {
                return Err(format!("Xen PV maps 4 KiB pages only: {sizes:?}"));
            }
            // backend-xen-pv/src/mmu/mod.rs: one hypercall per 512 entries, one per flush
            // (the last batch rides on it), and per table made protect (2 + a partial
            // batch submitted first) and per table retired a release (1 + a partial batch).
            let bound = entries.div_ceil(512) + flushes + 3 * alloc + 2 * freed;
            if hc > bound {
                return Err(format!("{hc} hypercalls, more than the bound {bound}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "INFO RESULT runtime_map Figures { seed: 7, ops: 10000, maps: 4563, unmaps: 2966, protects: 2471, refused: 3069, pages_checked: 85062, faults_caught: 70251, tables_allocated: 6, tables_freed: 5, tables_kept: 1, flushes: 2889, full_flushes: 9, pages_invalidated: 15526, entries_written: 29112, hypercalls: 2914, hypercall_entries: 44471, free_before: 63504384, free_after: 63500288, maps_by_size: [1494, 0, 0] }";
    const ARGS: &[&str] = &["runtime_map.seed=7", "runtime_map.ops=10000"];

    #[test]
    fn a_good_line_passes_and_each_lie_is_caught() {
        assert_eq!(check(Board::Xen, ARGS, 64 << 20, LINE), Ok(()));
        let other_seed = ["runtime_map.seed=8", "runtime_map.ops=10000"];
        assert!(check(Board::Xen, &other_seed, 64 << 20, LINE).is_err());
        let lost = LINE.replace("free_after: 63500288", "free_after: 63496192");
        assert!(check(Board::Xen, ARGS, 64 << 20, &lost)
            .unwrap_err()
            .contains("not conserved"));
        let leak = LINE.replace("tables_freed: 5", "tables_freed: 4");
        assert!(check(Board::Xen, ARGS, 64 << 20, &leak).is_err());
        let costly = LINE.replace("hypercalls: 2914", "hypercalls: 9000");
        assert!(check(Board::Xen, ARGS, 64 << 20, &costly)
            .unwrap_err()
            .contains("bound"));
        assert!(
            check(Board::Native, ARGS, 64 << 20, LINE).is_err(),
            "no large pages on native"
        );
        assert!(
            check(Board::Xen, ARGS, 1 << 30, LINE).is_err(),
            "free bytes far from the memory size"
        );
    }
}
