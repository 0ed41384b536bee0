package sftp

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"

	pkgsftp "github.com/pkg/sftp"

	"github.com/alkdev/alknet/core"
)

// session is the file system of one SFTP session: pkg/sftp's request
// server calls its methods (the Handlers interfaces) from several worker
// goroutines, so everything here is safe for concurrent use.
type session struct {
	root       *os.Root
	id         string // the identity's ID, for use
	read       bool   // ScopeRead held
	write      bool   // ScopeWrite held
	maxHandles int
	use        *usage // the server's counts across sessions
	logger     *slog.Logger

	mu       sync.Mutex
	handles  int  // open files, uploads and directory listings
	draining bool // the server is shutting down: no new handles
	ended    bool // the session ended: its handles are no longer in use
	// uploads are the session's open uploads by SFTP path, newest last.
	// pkg/sftp turns FSTAT and FSETSTAT on a handle into STAT and SETSTAT
	// on the handle's path; these go to the upload's temporary file, which
	// is what the client has been writing.
	uploads map[string][]*upload
}

func newSession(root *os.Root, id *core.Identity, maxHandles int, use *usage, logger *slog.Logger) *session {
	return &session{
		root:       root,
		id:         id.ID,
		use:        use,
		read:       id.HasScope(ScopeRead),
		write:      id.HasScope(ScopeWrite),
		maxHandles: maxHandles,
		logger:     logger,
		uploads:    make(map[string][]*upload),
	}
}

// handlers returns the session as pkg/sftp's handler set.
func (s *session) handlers() pkgsftp.Handlers {
	return pkgsftp.Handlers{FileGet: s, FilePut: s, FileCmd: s, FileList: s}
}

// acquire counts a new handle, refusing it while draining or past a
// limit: the session's, the identity's or the node's.
func (s *session) acquire() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return errDraining
	case s.handles >= s.maxHandles:
		return errSessionHandles
	}
	if err := s.use.openHandle(s.id); err != nil {
		s.use.logRefusal(s.logger, "sftp open refused", err)
		return err
	}
	s.handles++
	return nil
}

// release undoes acquire.
func (s *session) release() {
	s.mu.Lock()
	s.handles--
	ended := s.ended
	s.mu.Unlock()
	if !ended {
		s.use.closeHandle(s.id)
	}
}

// end gives the handles the session still counts back to the server's
// counts, once its request server has stopped. pkg/sftp closes every open
// handle before it stops, so there are none unless it stopped in a panic;
// a handle closed later then counts only against the session.
func (s *session) end() {
	s.mu.Lock()
	s.ended = true
	n := s.handles
	s.mu.Unlock()
	for range n {
		s.use.closeHandle(s.id)
	}
}

// drain refuses new handles from now on and reports whether the session
// holds none, so that it can be closed at once.
func (s *session) drain() (idle bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining = true
	return s.handles == 0
}

func (s *session) addUpload(vpath string, u *upload) {
	s.mu.Lock()
	s.uploads[vpath] = append(s.uploads[vpath], u)
	s.mu.Unlock()
}

func (s *session) removeUpload(vpath string, u *upload) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.uploads[vpath]
	for i, v := range list {
		if v == u {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.uploads, vpath)
	} else {
		s.uploads[vpath] = list
	}
}

// uploadAt returns the newest open upload to vpath, or nil.
func (s *session) uploadAt(vpath string) *upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	if list := s.uploads[vpath]; len(list) > 0 {
		return list[len(list)-1]
	}
	return nil
}

// guard turns a panic in a handler into a failure status for the client
// and an error log line: the handlers run on pkg/sftp's goroutines, where a
// panic would end the process.
func (s *session) guard(op string, err *error) {
	if v := recover(); v != nil {
		s.logger.Error("sftp handler panic", "op", op, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		*err = pkgsftp.ErrSSHFxFailure
	}
}
