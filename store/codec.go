package store

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Codec choice, measured by BenchmarkCompress/BenchmarkDecompress (codec_bench_test.go),
// 64 KiB blocks, one core:
//
//	                    encode source  ratio  encode random  decode source
//	s2                  490-520 MB/s   0.40   12.7-13.5 GB/s 1.5-2.4 GB/s
//	zstd SpeedFastest   177-197 MB/s   0.30   5.9-6.5 GB/s   0.56-0.59 GB/s
//
// s2 is ~2.7x faster to encode and ~3x to decode; zstd saves a further 10% of the input.
// Put already hashes at ~3.5 GB/s, so s2 keeps Put and Get several times faster for a modest
// loss in space, and it rejects incompressible data at >12 GB/s. Values are written with s2.

// Stored value: one codec byte, then the payload.
const (
	codecRaw  = 0
	codecS2   = 1
	codecZstd = 2 // readable, not written: kept so a later switch stays compatible
)

// maxDecoded bounds the decoded size a compressed value may claim, so garbage on disk
// cannot make the decoder allocate without limit. Larger blocks are stored raw.
const maxDecoded = 64 << 20

var zstdDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxDecoded))

// encodeValue appends the stored form of data to dst. It compresses with s2 only when
// that saves at least 1/8, since decoding costs on every read.
func encodeValue(dst, data []byte) []byte {
	dst = append(dst[:0], codecRaw)
	if len(data) < 64 || len(data) > maxDecoded {
		return append(dst, data...)
	}
	n := s2.MaxEncodedLen(len(data))
	if cap(dst) < 1+n {
		dst = append(make([]byte, 0, 1+n), codecRaw)
	}
	c := s2.Encode(dst[1:1+n], data)
	if len(c) > len(data)-len(data)/8 {
		return append(dst[:1], data...)
	}
	dst[0] = codecS2
	return dst[:1+len(c)]
}

var errBadValue = errors.New("bad stored value")

// decodeValue appends the content of stored value v to dst[:0]. It never panics on garbage;
// the caller verifies the hash, so a wrong but well-formed payload is caught there.
func decodeValue(dst, v []byte) ([]byte, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: empty", errBadValue)
	}
	p := v[1:]
	switch v[0] {
	case codecRaw:
		return append(dst[:0], p...), nil
	case codecS2:
		n, err := s2.DecodedLen(p)
		if err != nil || n > maxDecoded {
			return nil, fmt.Errorf("%w: s2 length %d: %v", errBadValue, n, err)
		}
		if cap(dst) < n {
			dst = make([]byte, n)
		}
		out, err := s2.Decode(dst[:n], p)
		if err != nil {
			return nil, fmt.Errorf("%w: s2: %v", errBadValue, err)
		}
		return out, nil
	case codecZstd:
		out, err := zstdDec.DecodeAll(p, dst[:0])
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", errBadValue, err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unknown codec %d", errBadValue, v[0])
	}
}
