//! Property tests: round trips of both formats and of sealed values.
