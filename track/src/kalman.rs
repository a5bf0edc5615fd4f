//! The constant-velocity Kalman filter of ByteTrack (and DeepSORT before it) over a box's
//! centre, aspect ratio and height: state `(x, y, a, h, vx, vy, va, vh)`, the box `(x, y, a, h)`
//! observed directly. Noise scales with the box's height, so a far (small) object is expected
//! to move fewer pixels than a near one. Fixed-size arrays: no allocation per step.

/// A state mean.
pub type Mean = [f64; 8];
/// A state covariance.
pub type Covariance = [[f64; 8]; 8];

const STD_WEIGHT_POSITION: f64 = 1.0 / 20.0;
const STD_WEIGHT_VELOCITY: f64 = 1.0 / 160.0;

/// A new track's state from its first box `(x, y, a, h)`.
pub fn initiate(measurement: [f64; 4]) -> (Mean, Covariance) {
    let h = measurement[3];
    let mut mean = [0.0; 8];
    mean[..4].copy_from_slice(&measurement);
    let std = [
        2.0 * STD_WEIGHT_POSITION * h,
        2.0 * STD_WEIGHT_POSITION * h,
        1e-2,
        2.0 * STD_WEIGHT_POSITION * h,
        10.0 * STD_WEIGHT_VELOCITY * h,
        10.0 * STD_WEIGHT_VELOCITY * h,
        1e-5,
        10.0 * STD_WEIGHT_VELOCITY * h,
    ];
    let mut covariance = [[0.0; 8]; 8];
    for i in 0..8 {
        covariance[i][i] = std[i] * std[i];
    }
    (mean, covariance)
}

/// One frame ahead: position moves by velocity; uncertainty grows.
pub fn predict(mean: &mut Mean, covariance: &mut Covariance) {
    let h = mean[3];
    let q = [
        STD_WEIGHT_POSITION * h,
        STD_WEIGHT_POSITION * h,
        1e-2,
        STD_WEIGHT_POSITION * h,
        STD_WEIGHT_VELOCITY * h,
        STD_WEIGHT_VELOCITY * h,
        1e-5,
        STD_WEIGHT_VELOCITY * h,
    ];
    for i in 0..4 {
        mean[i] += mean[i + 4];
    }
    // F P Fᵀ with F = [[I, I], [0, I]]: rows, then columns, gain the velocity block.
    let p = *covariance;
    let mut fp = p;
    for i in 0..4 {
        for j in 0..8 {
            fp[i][j] = p[i][j] + p[i + 4][j];
        }
    }
    let mut fpf = fp;
    for i in 0..8 {
        for j in 0..4 {
            fpf[i][j] = fp[i][j] + fp[i][j + 4];
        }
    }
    for i in 0..8 {
        fpf[i][i] += q[i] * q[i];
    }
    *covariance = fpf;
}

/// Corrects the state with an observed box `(x, y, a, h)`.
pub fn update(mean: &mut Mean, covariance: &mut Covariance, measurement: [f64; 4]) {
    let h = mean[3];
    let r = [
        STD_WEIGHT_POSITION * h,
        STD_WEIGHT_POSITION * h,
        1e-1,
        STD_WEIGHT_POSITION * h,
    ];
    // S = H P Hᵀ + R: the top-left block of P.
    let mut s = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            s[i][j] = covariance[i][j];
        }
        s[i][i] += r[i] * r[i];
    }
    let s_inv = invert_spd(&s);
    // K = P Hᵀ S⁻¹ (8×4); P Hᵀ is P's first four columns.
    let mut k = [[0.0; 4]; 8];
    for i in 0..8 {
        for j in 0..4 {
            k[i][j] = (0..4).map(|m| covariance[i][m] * s_inv[m][j]).sum();
        }
    }
    let innovation: [f64; 4] = std::array::from_fn(|i| measurement[i] - mean[i]);
    for i in 0..8 {
        mean[i] += (0..4).map(|j| k[i][j] * innovation[j]).sum::<f64>();
    }
    // P − K S Kᵀ.
    let mut ks = [[0.0; 4]; 8];
    for i in 0..8 {
        for j in 0..4 {
            ks[i][j] = (0..4).map(|m| k[i][m] * s[m][j]).sum();
        }
    }
    for i in 0..8 {
        for j in 0..8 {
            covariance[i][j] -= (0..4).map(|m| ks[i][m] * k[j][m]).sum::<f64>();
        }
    }
}

/// The inverse of a symmetric positive-definite 4×4 matrix (Cholesky).
fn invert_spd(a: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    let mut l = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                l[i][j] = (a[i][i] - sum).max(f64::MIN_POSITIVE).sqrt();
            } else {
                l[i][j] = (a[i][j] - sum) / l[j][j];
            }
        }
    }
    // Solve L Lᵀ X = I column by column.
    let mut inv = [[0.0; 4]; 4];
    for c in 0..4 {
        let mut y = [0.0; 4];
        for i in 0..4 {
            let e = if i == c { 1.0 } else { 0.0 };
            y[i] = (e - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
        }
        let mut x = [0.0; 4];
        for i in (0..4).rev() {
            x[i] = (y[i] - (i + 1..4).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
        }
        for r in 0..4 {
            inv[r][c] = x[r];
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_moving_steadily_is_followed_and_its_velocity_learned() {
        let (mut mean, mut cov) = initiate([100.0, 50.0, 0.5, 40.0]);
        for t in 1..=30 {
            predict(&mut mean, &mut cov);
            update(
                &mut mean,
                &mut cov,
                [100.0 + 3.0 * t as f64, 50.0, 0.5, 40.0],
            );
        }
        assert!((mean[4] - 3.0).abs() < 0.1, "vx {}", mean[4]);
        predict(&mut mean, &mut cov);
        assert!((mean[0] - 193.0).abs() < 0.5, "x {}", mean[0]);
        // The covariance stays symmetric and positive on its diagonal.
        for i in 0..8 {
            assert!(cov[i][i] > 0.0);
            for j in 0..8 {
                assert!((cov[i][j] - cov[j][i]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn the_inverse_is_an_inverse() {
        let a = [
            [4.0, 1.0, 0.5, 0.0],
            [1.0, 3.0, 0.2, 0.1],
            [0.5, 0.2, 2.0, 0.3],
            [0.0, 0.1, 0.3, 1.5],
        ];
        let inv = invert_spd(&a);
        for i in 0..4 {
            for j in 0..4 {
                let v: f64 = (0..4).map(|k| a[i][k] * inv[k][j]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }
}
