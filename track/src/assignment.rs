//! Minimum-cost assignment between tracks and detections, as ByteTrack makes it: the optimal
//! rectangular linear assignment (what `scipy.optimize.linear_sum_assignment` solves), on costs
//! capped just above a threshold, keeping only the pairs at or under it.

/// Rows matched to columns (`(row, column)`), and the rows and columns left over, ascending.
#[derive(Debug, Default, PartialEq)]
pub struct Assignment {
    pub matches: Vec<(usize, usize)>,
    pub unmatched_rows: Vec<usize>,
    pub unmatched_cols: Vec<usize>,
}

/// Matches rows to columns of the `rows × cols` matrix `cost` (row-major) at least total cost,
/// keeping the pairs whose cost is at most `thresh`.
pub fn linear_assignment(cost: &[f64], rows: usize, cols: usize, thresh: f64) -> Assignment {
    debug_assert_eq!(cost.len(), rows * cols);
    if rows == 0 || cols == 0 {
        return Assignment {
            matches: Vec::new(),
            unmatched_rows: (0..rows).collect(),
            unmatched_cols: (0..cols).collect(),
        };
    }
    // Capped, as the reference does: beyond the threshold every pair costs the same.
    let capped: Vec<f64> = cost
        .iter()
        .map(|&c| if c > thresh { thresh + 1e-4 } else { c })
        .collect();
    let pairs = solve(&capped, rows, cols);
    let mut matched_rows = vec![false; rows];
    let mut matched_cols = vec![false; cols];
    let mut matches = Vec::new();
    for (r, c) in pairs {
        if cost[r * cols + c] <= thresh {
            matched_rows[r] = true;
            matched_cols[c] = true;
            matches.push((r, c));
        }
    }
    Assignment {
        matches,
        unmatched_rows: (0..rows).filter(|&r| !matched_rows[r]).collect(),
        unmatched_cols: (0..cols).filter(|&c| !matched_cols[c]).collect(),
    }
}

/// The optimal assignment of `min(rows, cols)` pairs (Hungarian method with potentials,
/// O(n²m)), sorted by row.
fn solve(cost: &[f64], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    // The method assigns every row of a matrix with no more rows than columns.
    let transposed = rows > cols;
    let (n, m) = if transposed {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let at = |i: usize, j: usize| {
        if transposed {
            cost[j * cols + i]
        } else {
            cost[i * cols + j]
        }
    };
    // 1-based, column 0 a sentinel, as in the textbook form.
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=m {
                if !used[j] {
                    let cur = at(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut pairs: Vec<(usize, usize)> = (1..=m)
        .filter(|&j| p[j] != 0)
        .map(|j| {
            let (i, j) = (p[j] - 1, j - 1);
            if transposed {
                (j, i)
            } else {
                (i, j)
            }
        })
        .collect();
    pairs.sort_unstable();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every assignment of a small matrix, the cheapest found by brute force.
    fn brute(cost: &[f64], rows: usize, cols: usize) -> f64 {
        fn go(r: usize, rows: usize, cols: usize, used: &mut Vec<bool>, cost: &[f64]) -> f64 {
            if r == rows {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for c in 0..cols {
                if !used[c] {
                    used[c] = true;
                    best = best.min(cost[r * cols + c] + go(r + 1, rows, cols, used, cost));
                    used[c] = false;
                }
            }
            best
        }
        if rows <= cols {
            go(0, rows, cols, &mut vec![false; cols], cost)
        } else {
            let t: Vec<f64> = (0..cols)
                .flat_map(|c| (0..rows).map(move |r| (r, c)))
                .map(|(r, c)| cost[r * cols + c])
                .collect();
            go(0, cols, rows, &mut vec![false; rows], &t)
        }
    }

    #[test]
    fn the_assignment_is_optimal_on_every_shape() {
        // A small deterministic generator: no dependency for a test.
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as f64 / (1u64 << 31) as f64
        };
        for rows in 1..=6 {
            for cols in 1..=6 {
                for _ in 0..20 {
                    let cost: Vec<f64> = (0..rows * cols).map(|_| next()).collect();
                    let pairs = solve(&cost, rows, cols);
                    assert_eq!(pairs.len(), rows.min(cols));
                    let total: f64 = pairs.iter().map(|&(r, c)| cost[r * cols + c]).sum();
                    assert!(
                        (total - brute(&cost, rows, cols)).abs() < 1e-9,
                        "{rows}x{cols}"
                    );
                }
            }
        }
    }

    #[test]
    fn pairs_over_the_threshold_are_left_unmatched() {
        let cost = [0.1, 0.9, 0.95, 0.2, 0.99, 0.99];
        let a = linear_assignment(&cost, 3, 2, 0.5);
        assert_eq!(a.matches, vec![(0, 0), (1, 1)]);
        assert_eq!(a.unmatched_rows, vec![2]);
        assert!(a.unmatched_cols.is_empty());
        let none = linear_assignment(&[], 0, 3, 0.5);
        assert_eq!(none.unmatched_cols, vec![0, 1, 2]);
    }
}
