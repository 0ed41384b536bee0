// Package perf is the alknet/perf diagnostic protocol: a throughput test
// through the real endpoint and router.
//
// On each stream the client sends the number of bytes it wants back as an
// unsigned 64-bit big-endian integer, then uploads any amount and
// half-closes. The server drains the upload, then sends the requested
// number of bytes and closes. Only identities with the "perf" scope may use
// it, so the protocol cannot be used for anonymous traffic amplification.
package perf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
)

// ALPN is the protocol name perf is served on.
const ALPN = "alknet/perf"

// Scope is the scope a peer needs to use perf.
const Scope = "perf"

// DefaultMaxBytes is the largest download a client may request by default.
const DefaultMaxBytes = 64 << 30

// headerTimeout bounds the wait for a stream's 8-byte request.
const headerTimeout = 10 * time.Second

// Config configures the perf [Handler].
type Config struct {
	// MaxBytes caps the bytes a client may ask for per stream. Default
	// DefaultMaxBytes.
	MaxBytes uint64
	// Logger receives auth lines; nil means slog.Default().
	Logger *slog.Logger
}

// Handler serves alknet/perf.
type Handler struct {
	max uint64
}

// New returns the perf handler, restricted to peers holding [Scope].
func New(cfg Config) core.Handler {
	h := &Handler{max: cfg.MaxBytes}
	if h.max == 0 {
		h.max = DefaultMaxBytes
	}
	return core.Restrict(h, core.AccessControl{AllScopes: []string{Scope}}, cfg.Logger)
}

// ALPNs implements core.Handler.
func (h *Handler) ALPNs() []string { return []string{ALPN} }

// Serve implements core.Handler: one test per stream, until ctx ends or the
// connection does; streams in flight finish first.
func (h *Handler) Serve(ctx context.Context, conn core.Conn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s, err := conn.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		wg.Go(func() {
			if err := h.serveStream(s); err != nil {
				conn.Logger().Debug("perf stream failed", "err", err)
			}
		})
	}
}

func (h *Handler) serveStream(s core.Stream) error {
	defer s.Close()
	var hdr [8]byte
	_ = s.SetReadDeadline(time.Now().Add(headerTimeout))
	if _, err := io.ReadFull(s, hdr[:]); err != nil {
		return fmt.Errorf("perf: read request: %w", err)
	}
	_ = s.SetReadDeadline(time.Time{})
	n := binary.BigEndian.Uint64(hdr[:])
	if n > h.max {
		return fmt.Errorf("perf: %d bytes requested, limit %d", n, h.max)
	}
	if _, err := io.Copy(io.Discard, s); err != nil {
		return fmt.Errorf("perf: drain upload: %w", err)
	}
	if _, err := writeZeros(s, int64(n)); err != nil {
		return fmt.Errorf("perf: send: %w", err)
	}
	return s.CloseWrite()
}

var zeros = make([]byte, 64<<10)

func writeZeros(w io.Writer, n int64) (int64, error) {
	var sent int64
	for sent < n {
		k, err := w.Write(zeros[:min(int64(len(zeros)), n-sent)])
		sent += int64(k)
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// Options is one client run.
type Options struct {
	// Upload is the bytes each stream sends.
	Upload int64
	// Download is the bytes each stream asks back.
	Download int64
	// Streams is the number of parallel streams; default 1.
	Streams int
}

// Result is what a run measured, summed over its streams.
type Result struct {
	Uploaded, Downloaded int64
	// UploadTime runs from the start, when every stream begins sending, to
	// the last stream's first byte back: the server answers only once it has
	// drained that stream's upload, so by then every upload is in.
	// DownloadTime runs from the first byte back on any stream to the last
	// byte on all. With several streams the two phases may overlap, so
	// each rate is a lower bound.
	UploadTime, DownloadTime time.Duration
}

// UploadMbps is the upload throughput in megabits per second.
func (r Result) UploadMbps() float64 { return mbps(r.Uploaded, r.UploadTime) }

// DownloadMbps is the download throughput in megabits per second.
func (r Result) DownloadMbps() float64 { return mbps(r.Downloaded, r.DownloadTime) }

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) * 8 / d.Seconds() / 1e6
}

// Run performs a test on opts.Streams streams got from open (on QUIC, one
// connection's OpenStream; on TCP+TLS, a new connection each).
func Run(ctx context.Context, open func(context.Context) (core.Stream, error), opts Options) (Result, error) {
	if opts.Streams <= 0 {
		opts.Streams = 1
	}
	if opts.Upload < 0 || opts.Download < 0 {
		return Result{}, errors.New("perf: negative byte count")
	}
	results := make([]streamResult, opts.Streams)
	errs := make([]error, opts.Streams)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range opts.Streams {
		wg.Go(func() { results[i], errs[i] = runStream(ctx, open, opts) })
	}
	wg.Wait()
	var total Result
	var lastFirst, firstFirst, lastEnd time.Time
	for i, r := range results {
		total.Uploaded += r.uploaded
		total.Downloaded += r.downloaded
		if i == 0 || r.firstByte.Before(firstFirst) {
			firstFirst = r.firstByte
		}
		if r.firstByte.After(lastFirst) {
			lastFirst = r.firstByte
		}
		if r.end.After(lastEnd) {
			lastEnd = r.end
		}
	}
	total.UploadTime = lastFirst.Sub(start)
	total.DownloadTime = lastEnd.Sub(firstFirst)
	return total, errors.Join(errs...)
}

// streamResult is one stream's bytes and the moments that bound its phases.
type streamResult struct {
	uploaded, downloaded int64
	firstByte, end       time.Time
}

func runStream(ctx context.Context, open func(context.Context) (core.Stream, error), opts Options) (r streamResult, err error) {
	s, err := open(ctx)
	if err != nil {
		return r, fmt.Errorf("perf: open stream: %w", err)
	}
	defer func() {
		if err != nil {
			s.Abort(core.CodeInternal)
			return
		}
		s.Close()
	}()
	stop := context.AfterFunc(ctx, func() { s.Abort(core.CodeShutdown) })
	defer stop()
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(opts.Download))
	if _, err := s.Write(hdr[:]); err != nil {
		return r, fmt.Errorf("perf: send request: %w", err)
	}
	if r.uploaded, err = writeZeros(s, opts.Upload); err != nil {
		return r, fmt.Errorf("perf: upload: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return r, fmt.Errorf("perf: half-close: %w", err)
	}
	var first [1]byte
	n, err := io.ReadFull(s, first[:])
	r.firstByte = time.Now()
	if err != nil && !errors.Is(err, io.EOF) {
		return r, fmt.Errorf("perf: download: %w", err)
	}
	rest, err := io.Copy(io.Discard, s)
	r.end = time.Now()
	r.downloaded = int64(n) + rest
	if err != nil {
		return r, fmt.Errorf("perf: download: %w", err)
	}
	if r.downloaded != opts.Download {
		return r, fmt.Errorf("perf: got %d bytes back, asked for %d", r.downloaded, opts.Download)
	}
	return r, nil
}
