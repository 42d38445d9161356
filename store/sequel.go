package store

import "context"

// A Sequel lists, in order, the blocks that its reader asks for after the block it asks for
// now (the rest of a file). A Fetcher that reads ahead uses it to find where a file goes on
// when that is not next to the block in the remote (push splits a large file across packs).
// It stops when yield returns false; it may read the repository, so call it holding no lock
// that a read takes.
type Sequel func(yield func(ID) bool)

type sequelKey struct{}

// WithSequel returns a context whose Gets tell the Fetcher what the reader asks for next.
func WithSequel(ctx context.Context, s Sequel) context.Context {
	return context.WithValue(ctx, sequelKey{}, s)
}

// SequelOf returns the Sequel set on ctx, or nil.
func SequelOf(ctx context.Context) Sequel {
	s, _ := ctx.Value(sequelKey{}).(Sequel)
	return s
}

type streamingKey struct{}

// WithStreaming returns a context whose Gets come from a reader that has been reading its
// file in order for a while (several reads, each where the one before ended): a Fetcher
// reading ahead may start with a large window, since such a reader will likely read on.
func WithStreaming(ctx context.Context) context.Context {
	return context.WithValue(ctx, streamingKey{}, true)
}

// Streaming reports whether ctx comes from WithStreaming.
func Streaming(ctx context.Context) bool { return ctx.Value(streamingKey{}) != nil }
