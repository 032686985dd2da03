//! Paired rounds: ratios of two measures taken side by side, round by round, summarised.

/// The median, smallest and largest of `ratios` (which must not be empty).
pub fn median_and_range(mut ratios: Vec<f64>) -> (f64, f64, f64) {
    ratios.sort_by(f64::total_cmp);
    (
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
    )
}
