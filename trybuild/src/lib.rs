//! Compile tests of manhole; see tests/.
