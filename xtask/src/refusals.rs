//! Judging the `refusals` example: for every position the host planted (its `refusals.at=`
//! guest argument), one release row, one fill row and one row of the run-time mapper's
//! batch, each saying Xen refused exactly that entry with -EBUSY, the typed error named it,
//! and the frames carried on as their types say.

use crate::boot::BootResult;

/// The positions in `refusals.at=P,P,...` among `guest_args`.
pub fn planted(guest_args: &[&str]) -> Result<Vec<u64>, String> {
    let list = guest_args
        .iter()
        .find_map(|a| a.strip_prefix("refusals.at="))
        .ok_or("the test plants nothing (no refusals.at= guest argument)")?;
    list.split(',')
        .map(|p| p.parse().map_err(|_| format!("refusals.at: {p:?}")))
        .collect()
}

/// The `RESULT refusals op=OP at=P ...` line's fields.
fn row<'a>(lines: &'a [String], op: &str, at: u64) -> Result<Vec<(&'a str, &'a str)>, String> {
    let head = format!("RESULT refusals op={op} at={at} ");
    let line = lines
        .iter()
        .find(|l| l.contains(&head))
        .ok_or_else(|| format!("no `{}` line", head.trim_end()))?;
    let (_, rest) = line.split_once(&head).expect("found");
    Ok(rest
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect())
}

fn expect(fields: &[(&str, &str)], name: &str, want: &str, what: &str) -> Result<(), String> {
    match fields.iter().find(|(k, _)| *k == name) {
        Some((_, v)) if *v == want => Ok(()),
        Some((_, v)) => Err(format!("{what}: {name}={v}, expected {want}")),
        None => Err(format!("{what}: no {name}")),
    }
}

/// Checks every planted position's two rows.
pub fn check(run: &BootResult, guest_args: &[&str]) -> Result<(), String> {
    let at = planted(guest_args)?;
    let lines = &run.defmt_lines;
    for &p in &at {
        let pos = p.to_string();
        let what = format!("release at {p}");
        let f = row(lines, "release", p)?;
        for (name, want) in [
            ("op_named", "Release"),
            ("errno", "16"),
            ("submitted", "512"),
            ("applied", pos.as_str()),
            ("failed_at", pos.as_str()),
            ("rollback", if p == 0 { "not-needed" } else { "done" }),
            ("read_only", "511"),
            ("writable", "512"),
            ("after", "ok"),
        ] {
            expect(&f, name, want, &what)?;
        }
        let planted = f.iter().find(|(k, _)| *k == "planted").map(|(_, v)| *v);
        let named = f.iter().find(|(k, _)| *k == "named").map(|(_, v)| *v);
        if planted.is_none() || planted != named {
            return Err(format!(
                "{what}: the error names frame {named:?}, the mistake was planted at {planted:?}"
            ));
        }
        let what = format!("fill at {p}");
        let f = row(lines, "fill", p)?;
        for (name, want) in [
            ("op_named", "Write"),
            ("errno", "16"),
            ("submitted", "512"),
            ("applied", pos.as_str()),
            ("failed_at", pos.as_str()),
            ("index", pos.as_str()),
            ("entry_named", "ok"),
            ("as_written", "512"),
            ("stored", "true"),
            ("after", "ok"),
        ] {
            expect(&f, name, want, &what)?;
        }
        let what = format!("map at {p}");
        let f = row(lines, "map", p)?;
        for (name, want) in [
            ("op_named", "Write"),
            ("errno", "16"),
            ("index", pos.as_str()),
            ("entry_named", "ok"),
            // The refused batch undone, every table of the refused mapper given back but the
            // level-3 one it made in the row's root slot (empty before), which stays: the
            // one frame memblock does not get back.
            ("mapped_after", "0"),
            ("leaked_tables", "0"),
            ("tables_kept", "1"),
            ("frames_kept", "1"),
            ("landed", "512"),
            ("after", "ok"),
        ] {
            expect(&f, name, want, &what)?;
        }
        let field = |n: &str| f.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        if field("applied").is_none() || field("applied") != field("failed_at") {
            return Err(format!(
                "{what}: applied {:?}, failed at {:?}: the entries before the refused one are the ones applied",
                field("applied"),
                field("failed_at")
            ));
        }
    }
    let done = format!("RESULT refusals done rows={}", 3 * at.len());
    if !lines.iter().any(|l| l.contains(&done)) {
        return Err(format!("no `{done}` line"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse() {
        assert_eq!(planted(&["x", "refusals.at=0,511"]).unwrap(), [0, 511]);
        assert!(planted(&["refusals.at=0,x"]).is_err());
        assert!(planted(&[]).is_err());
    }
}
