package torchx

// Int8Engine is the quantized backend xling packs int8 layers for (see
// QLinear). Debian's libtorch has no FBGEMM; oneDNN's dynamic int8 linear
// is about twice as fast as float32 on x86, where QNNPACK, the other one,
// is four to five times slower.
const Int8Engine = "onednn"
