//! Which rotated journal files may go: those beyond the number kept, older than the minimum
//! retention, that every reader (sink) has read past; and, when the readers are so far behind
//! that the bytes they have not read exceed the cap, the oldest files whatever the readers
//! (their lines are lost to those readers, who count them). PURE: sizes, ages and positions in,
//! files to delete out. The cap on all files' bytes is applied after, by the journal
//! ([`over_total`] says by how much), since meeting it may rewrite files.

use std::time::Duration;

/// A journal file as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileState {
    /// Its size in bytes.
    pub size: u64,
    /// How long ago it was last written (its newest event's age).
    pub age: Duration,
}

/// What rotation keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Rotated files kept anyway.
    pub files: usize,
    /// Rotated files written to within this are kept too.
    pub min_age: Duration,
    /// The most unread bytes kept for a reader.
    pub undelivered: u64,
}

/// Where a reader is: the index of its file in the list (oldest first) and the bytes of it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Index into the files, oldest first.
    pub file: usize,
    /// Bytes of that file already read.
    pub offset: u64,
}

/// What to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Indices of the files to delete, oldest first (always the oldest files: the rest keep
    /// their order).
    pub delete: Vec<usize>,
    /// Of those, the files some reader had not finished (over the cap).
    pub undelivered: Vec<usize>,
    /// The most bytes a reader has not read, after the deletions.
    pub behind: u64,
}

/// Plans a rotation's deletions. `files` are oldest first, the last is the live file (never
/// deleted); `positions` are the readers'.
pub fn plan(files: &[FileState], positions: &[Position], keep: Keep) -> Plan {
    let Keep { files: keep_files, min_age, undelivered: cap } = keep;
    let Some(live) = files.len().checked_sub(1) else { return Plan::default() };
    // A reader whose file is gone (or unknown) reads from the oldest file; one at the end of a
    // rotated file is at the start of the next.
    let positions: Vec<Position> = positions
        .iter()
        .map(|p| {
            let mut p = if p.file > live { Position { file: 0, offset: 0 } } else { *p };
            while p.file < live && p.offset >= files[p.file].size {
                p = Position { file: p.file + 1, offset: 0 };
            }
            p
        })
        .collect();
    let needed_from = positions.iter().map(|p| p.file).min().unwrap_or(live);
    let mut first_kept = 0;
    // Rotated file i is number `live - i`: kept when within `keep`, young, or not read by
    // everyone.
    while first_kept < live
        && live - first_kept > keep_files
        && files[first_kept].age >= min_age
        && first_kept < needed_from
    {
        first_kept += 1;
    }
    let behind_of = |p: &Position, from: usize| -> u64 {
        if p.file < from {
            files[from..].iter().map(|f| f.size).sum()
        } else {
            files[p.file].size.saturating_sub(p.offset) + files[p.file + 1..].iter().map(|f| f.size).sum::<u64>()
        }
    };
    let behind = |from: usize| positions.iter().map(|p| behind_of(p, from)).max().unwrap_or(0);
    let mut undelivered = Vec::new();
    while first_kept < live && behind(first_kept) > cap {
        if positions.iter().any(|p| p.file <= first_kept && behind_of(p, first_kept) > 0) {
            undelivered.push(first_kept);
        }
        first_kept += 1;
    }
    Plan { delete: (0..first_kept).collect(), undelivered, behind: behind(first_kept) }
}

/// How many bytes the files (oldest first, the live one last) are over `total`: 0 when within.
pub fn over_total(files: &[FileState], total: u64) -> u64 {
    files.iter().map(|f| f.size).sum::<u64>().saturating_sub(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: Duration = Duration::from_secs(100 * 3600);

    fn files(sizes: &[u64]) -> Vec<FileState> {
        sizes.iter().map(|&size| FileState { size, age: OLD }).collect()
    }

    fn keep(files: usize, undelivered: u64) -> Keep {
        Keep { files, min_age: Duration::from_secs(24 * 3600), undelivered }
    }

    fn at(file: usize, offset: u64) -> Position {
        Position { file, offset }
    }

    #[test]
    fn keeps_what_readers_need_and_drops_the_oldest_over_the_cap() {
        // Files oldest first; the last is live.
        let five = files(&[100, 100, 100, 100, 10]);
        for (what, positions, kept, cap, delete, undelivered) in [
            ("no readers: keep 2 rotated", vec![], 2, 1000, vec![0, 1], vec![]),
            ("keep 0", vec![], 0, 1000, vec![0, 1, 2, 3], vec![]),
            ("readers at the end", vec![at(4, 10)], 2, 1000, vec![0, 1], vec![]),
            ("a reader in the oldest file keeps everything", vec![at(0, 50), at(4, 0)], 2, 1000, vec![], vec![]),
            ("a reader in file 1 keeps 1..", vec![at(1, 0)], 1, 1000, vec![0], vec![]),
            ("a reader at the end of file 0 needs it no more", vec![at(0, 100)], 0, 1000, vec![0], vec![]),
            ("over the cap: drop the oldest", vec![at(0, 0)], 2, 250, vec![0, 1], vec![0, 1]),
            ("the cap never deletes the live file", vec![at(0, 0)], 0, 0, vec![0, 1, 2, 3], vec![0, 1, 2, 3]),
            ("an unknown file reads from the oldest", vec![at(9, 5)], 3, 1000, vec![], vec![]),
        ] {
            let got = plan(&five, &positions, keep(kept, cap));
            assert_eq!((got.delete, got.undelivered), (delete, undelivered), "{what}");
        }
    }

    #[test]
    fn says_how_far_behind_the_slowest_reader_is() {
        let got = plan(&files(&[100, 100, 10]), &[at(0, 40), at(2, 5)], keep(5, 1000));
        assert_eq!(got.behind, 60 + 100 + 10);
        assert_eq!(plan(&[], &[], keep(1, 1)), Plan::default());
    }

    #[test]
    fn young_files_stay_whatever_the_count_until_the_total_cap() {
        let mut four = files(&[100, 100, 100, 10]);
        four[1].age = Duration::from_secs(3600);
        // File 0 is old and beyond keep 0: it goes; file 1 is an hour old: it and every newer
        // file stay.
        assert_eq!(plan(&four, &[], keep(0, 1000)).delete, vec![0]);
        four[0].age = Duration::from_secs(60);
        assert_eq!(plan(&four, &[], keep(0, 1000)).delete, Vec::<usize>::new());
        assert_eq!(over_total(&four, 250), 60);
        assert_eq!(over_total(&four, 1000), 0);
    }
}
