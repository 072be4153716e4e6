//! The layered layout of a graph of jobs (a workflow's steps), drawn as SVG by
//! [`workflow`](super::workflow): nodes in layers by their longest path from a root, so every
//! edge points down, and each layer ordered by barycentre sweeps to reduce crossings.
//!
//! Nodes are `0..n`, edges `(parent, child)`. A workflow cannot have a cycle (a step waits only
//! for steps added before it); should one come in anyway, its nodes are still placed, after
//! their parents outside it.

/// Down-and-up barycentre sweeps tried; the ordering with the fewest crossings is kept.
const SWEEPS: usize = 4;

/// Each node's layer: 0 for a root, else one more than its deepest parent's.
pub(super) fn layers(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut children = vec![Vec::new(); n];
    let mut waiting = vec![0usize; n];
    for &(parent, child) in edges {
        if parent < n && child < n && parent != child {
            children[parent].push(child);
            waiting[child] += 1;
        }
    }
    let mut layer = vec![0usize; n];
    let mut queued: Vec<bool> = waiting.iter().map(|&w| w == 0).collect();
    let mut ready: Vec<usize> = (0..n).filter(|&v| queued[v]).rev().collect();
    loop {
        while let Some(v) = ready.pop() {
            for &c in &children[v] {
                if queued[c] {
                    // An edge back into placed nodes (a cycle): left out of the layering.
                    continue;
                }
                layer[c] = layer[c].max(layer[v] + 1);
                waiting[c] -= 1;
                if waiting[c] == 0 {
                    queued[c] = true;
                    ready.push(c);
                }
            }
        }
        // Only a cycle leaves nodes unplaced: release its first node and go on.
        match (0..n).find(|&v| !queued[v]) {
            Some(v) => {
                queued[v] = true;
                ready.push(v);
            }
            None => break,
        }
    }
    layer
}

/// The nodes of each layer, left to right: first in node order, then by barycentre sweeps
/// (a node moves towards the mean position of its parents, sweeping down, and of its
/// children, sweeping up), keeping the ordering with the fewest crossings between
/// neighbouring layers.
pub(super) fn order(layer: &[usize], edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let depth = layer.iter().max().map_or(0, |l| l + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (v, &l) in layer.iter().enumerate() {
        rows[l].push(v);
    }
    let n = layer.len();
    let mut parents = vec![Vec::new(); n];
    let mut children = vec![Vec::new(); n];
    for &(p, c) in edges {
        if p < n && c < n && p != c {
            parents[c].push(p);
            children[p].push(c);
        }
    }
    let mut best = rows.clone();
    let mut fewest = crossings(&rows, layer, edges);
    for sweep in 0..SWEEPS * 2 {
        let down = sweep % 2 == 0;
        let pos = positions(&rows, n);
        let range: Vec<usize> = if down {
            (1..depth).collect()
        } else {
            (0..depth.saturating_sub(1)).rev().collect()
        };
        for l in range {
            let neighbours = if down { &parents } else { &children };
            let key = |v: usize| -> f64 {
                let ns = &neighbours[v];
                if ns.is_empty() {
                    pos[v] as f64
                } else {
                    ns.iter().map(|&u| pos[u] as f64).sum::<f64>() / ns.len() as f64
                }
            };
            // Stable: ties keep their order, so the first ordering stays when nothing improves.
            rows[l].sort_by(|&a, &b| key(a).total_cmp(&key(b)));
        }
        let now = crossings(&rows, layer, edges);
        if now < fewest {
            fewest = now;
            best = rows.clone();
        }
    }
    best
}

/// Each node's index within its layer.
fn positions(rows: &[Vec<usize>], n: usize) -> Vec<usize> {
    let mut pos = vec![0; n];
    for row in rows {
        for (i, &v) in row.iter().enumerate() {
            pos[v] = i;
        }
    }
    pos
}

/// Crossings between edges of neighbouring layers (edges spanning more layers are not
/// counted): per pair of layers, the inversions of the children's positions once the edges
/// are sorted by their parents' positions.
pub(super) fn crossings(rows: &[Vec<usize>], layer: &[usize], edges: &[(usize, usize)]) -> u64 {
    let pos = positions(rows, layer.len());
    let mut by_layer: Vec<Vec<(usize, usize)>> = vec![Vec::new(); rows.len()];
    for &(p, c) in edges {
        if p < layer.len() && c < layer.len() && layer[c] == layer[p] + 1 {
            by_layer[layer[p]].push((pos[p], pos[c]));
        }
    }
    let mut total = 0;
    for (l, mut pairs) in by_layer.into_iter().enumerate() {
        pairs.sort_unstable();
        let width = rows.get(l + 1).map_or(0, Vec::len);
        // A Fenwick tree over the children's positions: each edge crosses the earlier edges
        // that end to the right of it.
        let mut tree = vec![0u64; width + 1];
        for (seen, &(_, c)) in pairs.iter().enumerate() {
            let mut at = c + 1;
            let mut not_right = 0;
            while at > 0 {
                not_right += tree[at];
                at &= at - 1;
            }
            total += seen as u64 - not_right;
            let mut at = c + 1;
            while at <= width {
                tree[at] += 1;
                at += at & at.wrapping_neg();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges_point_down(layer: &[usize], edges: &[(usize, usize)]) {
        for &(p, c) in edges {
            assert!(
                layer[p] < layer[c],
                "edge {p} -> {c} goes from layer {} to {}",
                layer[p],
                layer[c]
            );
        }
    }

    #[test]
    fn a_diamond_has_three_layers() {
        let edges = [(0, 1), (0, 2), (1, 3), (2, 3)];
        let layer = layers(4, &edges);
        assert_eq!(layer, vec![0, 1, 1, 2]);
        assert_eq!(order(&layer, &edges), vec![vec![0], vec![1, 2], vec![3]]);
    }

    #[test]
    fn a_node_sits_below_its_deepest_parent() {
        // 0 -> 1 -> 2 -> 3, and 0 -> 3 directly: 3 still goes below 2.
        let edges = [(0, 1), (1, 2), (2, 3), (0, 3), (4, 2)];
        let layer = layers(5, &edges);
        assert_eq!(layer, vec![0, 1, 2, 3, 0]);
        edges_point_down(&layer, &edges);
    }

    #[test]
    fn no_edge_goes_up_in_a_random_dag() {
        // Edges from lower to higher index only: a DAG, as a workflow's steps are.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..50 {
            let n = 2 + (next() % 40) as usize;
            let mut edges = Vec::new();
            for c in 1..n {
                for _ in 0..(next() % 3) {
                    edges.push(((next() as usize) % c, c));
                }
            }
            let layer = layers(n, &edges);
            edges_point_down(&layer, &edges);
            let rows = order(&layer, &edges);
            let mut seen: Vec<usize> = rows.iter().flatten().copied().collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "every node placed once");
            for (l, row) in rows.iter().enumerate() {
                assert!(row.iter().all(|&v| layer[v] == l));
            }
        }
    }

    #[test]
    fn barycentre_undoes_crossings() {
        // Parents 0, 1; children 2 (of 1) and 3 (of 0): in node order the edges cross.
        let edges = [(0, 3), (1, 2)];
        let layer = layers(4, &edges);
        let naive = vec![vec![0, 1], vec![2, 3]];
        assert_eq!(crossings(&naive, &layer, &edges), 1);
        let rows = order(&layer, &edges);
        assert_eq!(crossings(&rows, &layer, &edges), 0, "{rows:?}");
    }

    #[test]
    fn a_cycle_is_still_placed() {
        let edges = [(0, 1), (1, 2), (2, 1)];
        let layer = layers(3, &edges);
        assert_eq!(layer.len(), 3);
        assert_eq!(order(&layer, &edges).iter().flatten().count(), 3);
    }
}
