package projections

import "sync/atomic"

// WriteFault is a fault injection hook (region/faults.go): called just
// before every write the store makes (a batch built and not yet committed,
// a pending claim), its error fails the write as a failing disk would, and
// nothing of the write is kept. It may also never return (a crash in the
// middle of a batch).
type WriteFault func(what string) error

// faultHook holds the store's WriteFault; nil, the default, costs one
// atomic load per write.
type faultHook struct{ p atomic.Pointer[WriteFault] }

// SetWriteFault installs f (nil removes it).
func (s *Store) SetWriteFault(f WriteFault) {
	if f == nil {
		s.fault.p.Store(nil)
		return
	}
	s.fault.p.Store(&f)
}

// injected returns the injected fault's error for a write of what, if any.
func (s *Store) injected(what string) error {
	if f := s.fault.p.Load(); f != nil {
		return (*f)(what)
	}
	return nil
}
