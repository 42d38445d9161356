package branch

import (
	"github.com/agentfs/agentfs/store"
	"github.com/agentfs/agentfs/work"
)

// The working layer is package work; the version model names its types as its own so that
// callers of a branch (the API, remotes, transfers) keep one import.
type (
	Workspace = work.Workspace
	Inode     = work.Inode
	Attr      = work.Attr
	SetAttr   = work.SetAttr
	DirEntry  = work.DirEntry
	Usage     = work.Usage
)

const (
	RootIno      = work.RootIno
	BlockSize    = work.BlockSize
	PageSize     = work.PageSize
	InlineMax    = work.InlineMax
	MaxFileSize  = work.MaxFileSize
	MaxEntryName = work.MaxEntryName

	kindInode  = work.KindInode
	kindDirent = work.KindDirent
	kindXattr  = work.KindXattr
	kindBlock  = work.KindBlock
	kindPage   = work.KindPage
	pfxOverlay = work.PfxOverlay
)

// ErrDamaged: a tree's content is inconsistent (see work.ErrDamaged).
var ErrDamaged = work.ErrDamaged

// Tree keys and records (package work owns their layout).
func inodeKey(ino uint64) []byte                   { return work.InodeKey(ino) }
func direntKey(parent uint64, name string) []byte  { return work.DirentKey(parent, name) }
func direntPrefix(parent uint64) []byte            { return work.DirentPrefix(parent) }
func xattrPrefix(ino uint64) []byte                { return work.XattrPrefix(ino) }
func blockKey(ino, index uint64) []byte            { return work.BlockKey(ino, index) }
func blockPrefix(ino uint64) []byte                { return work.BlockPrefix(ino) }
func keyIno(k []byte) uint64                       { return work.KeyIno(k) }
func encodeDirent(ino uint64, mode uint32) []byte  { return work.EncodeDirent(ino, mode) }
func decodeDirent(v []byte) (uint64, uint32, bool) { return work.DecodeDirent(v) }
func encodeInode(n *Inode) []byte                  { return work.EncodeInode(n) }
func decodeInode(b []byte) (*Inode, error)         { return work.DecodeInode(b) }
func inodeFrom(ino uint64, v []byte, ok bool, err error) (*Inode, error) {
	return work.InodeFrom(ino, v, ok, err)
}
func checkEntryName(name string) error { return work.CheckEntryName(name) }
func isZero(b []byte) bool             { return work.IsZero(b) }
func prefixEnd(p []byte) []byte        { return work.PrefixEnd(p) }
func overlayPrefix(id uint64) []byte   { return work.OverlayPrefix(id) }

// newEnv returns what workspaces need from the engine (made once, in Open).
func (e *Engine) newEnv() *work.Env {
	return &work.Env{
		Store: e.st, Tree: e.tree, Now: e.now, Log: e.log,
		AllocIno: e.allocIno, Op: e.op, Admit: e.admitQuota,
	}
}

func newWorkspace(e *Engine, br *Branch, root store.ID) *Workspace {
	return work.New(e.workEnv, br.Name, br.ID, root, br.Base)
}

func newView(e *Engine, root store.ID) *Workspace { return work.NewView(e.workEnv, root) }
