//! Output size and padding of a sliding window along one axis, with TensorFlow's rules.

use crate::error::{shape_err, OpResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    Valid,
    Same,
}

impl Padding {
    pub fn parse(s: &str) -> OpResult<Self> {
        match s.to_ascii_lowercase().as_str() {
            "valid" => Ok(Padding::Valid),
            "same" => Ok(Padding::Same),
            other => shape_err!("padding must be 'valid' or 'same', got '{other}'"),
        }
    }
}

/// One spatial axis of a window op: input size, window size, stride -> output size and the padding
/// before the first element. TF's "same": out = ceil(n/s), total pad = max((out-1)*s + k - n, 0),
/// with the odd extra element after (bottom/right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    pub input: usize,
    pub window: usize,
    pub stride: usize,
    pub output: usize,
    pub pad_before: usize,
}

impl Axis {
    pub fn new(input: usize, window: usize, stride: usize, padding: Padding) -> Option<Self> {
        if window == 0 || stride == 0 {
            return None;
        }
        let (output, pad_before) = match padding {
            Padding::Valid => {
                if window > input {
                    return None;
                }
                ((input - window) / stride + 1, 0)
            }
            Padding::Same => {
                let output = input.div_ceil(stride);
                let total = (output.max(1) - 1).checked_mul(stride)?.checked_add(window)?.saturating_sub(input);
                (output, total / 2)
            }
        };
        // `source` computes o · stride + t for every output o and tap t: the largest must fit a usize.
        output.checked_mul(stride)?.checked_add(window)?;
        Some(Axis { input, window, stride, output, pad_before })
    }

    /// Input coordinate of window tap `t` for output `o`, or None where it falls in the padding.
    #[inline(always)]
    pub fn source(&self, o: usize, t: usize) -> Option<usize> {
        let pos = (o * self.stride + t).checked_sub(self.pad_before)?;
        (pos < self.input).then_some(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_puts_the_extra_pad_after() {
        // n=5, k=4, s=1: out 5, total pad 3 -> 1 before, 2 after.
        let a = Axis::new(5, 4, 1, Padding::Same).unwrap();
        assert_eq!((a.output, a.pad_before), (5, 1));
        // n=6, k=3, s=2: out 3, total pad max(4+3-6,0)=1 -> 0 before.
        let a = Axis::new(6, 3, 2, Padding::Same).unwrap();
        assert_eq!((a.output, a.pad_before), (3, 0));
    }

    #[test]
    fn valid_rejects_window_larger_than_input() {
        assert!(Axis::new(2, 3, 1, Padding::Valid).is_none());
        assert_eq!(Axis::new(7, 3, 2, Padding::Valid).unwrap().output, 3);
    }
}
