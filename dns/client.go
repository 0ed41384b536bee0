package dns

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/alkdev/alknet/core"
)

// StatusError is a publish or fetch refused by a node or relay, with the
// relay status code (409 not newer, 429 rate limited, …).
type StatusError struct {
	Status int
	Reason string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("dns: %d %s: %s", e.Status, http.StatusText(e.Status), e.Reason)
}

// exchange sends one request on a fresh alknet/dns stream of a connection
// to addr and returns the response's status and body.
func exchange(ctx context.Context, d *core.Dialer, addr string, req []byte) (int, []byte, error) {
	if d == nil {
		d = &core.Dialer{}
	}
	conn, err := d.Dial(ctx, addr, ALPN)
	if err != nil {
		return 0, nil, err
	}
	defer conn.CloseWithError(core.CodeNoError, "")
	st, err := conn.OpenStream(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { st.Abort(DoQRequestCancelled) })
	defer stop()
	if _, err := st.Write(appendFrame(nil, req)); err != nil {
		return 0, nil, err
	}
	_ = st.CloseWrite()
	msg, err := readFrame(st, 4, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("dns: reading the response: %w", err)
	}
	status, body, err := DecodeResponse(msg)
	return status, body, err
}

// Publish sends p to the node at addr ("[nodeid@]host:port") over
// alknet/dns, presenting d's key. A refusal is a *[StatusError].
func Publish(ctx context.Context, d *core.Dialer, addr string, p *SignedPacket) error {
	status, body, err := exchange(ctx, d, addr, EncodePublish(p))
	if err != nil {
		return fmt.Errorf("dns: publish to %s: %w", addr, err)
	}
	if status != http.StatusNoContent {
		return &StatusError{Status: status, Reason: string(body)}
	}
	return nil
}

// Fetch asks the node at addr over alknet/dns for key's latest packet and
// verifies it. A missing packet is a *[StatusError] with status 404.
func Fetch(ctx context.Context, d *core.Dialer, addr string, key core.NodeID) (*SignedPacket, error) {
	status, body, err := exchange(ctx, d, addr, EncodeFetch(key))
	if err != nil {
		return nil, fmt.Errorf("dns: fetch from %s: %w", addr, err)
	}
	if status != http.StatusOK {
		return nil, &StatusError{Status: status, Reason: string(body)}
	}
	p, err := DecodeSignedPacket(body)
	if err != nil {
		return nil, err
	}
	if p.Key() != key {
		return nil, fmt.Errorf("dns: fetch from %s: packet for another key", addr)
	}
	return p, nil
}

// FetchRelay gets key's packet from a pkarr relay: GET <base>/<z32>, base
// being e.g. "https://node.example/pkarr". The packet is verified.
func FetchRelay(ctx context.Context, hc *http.Client, base string, key core.NodeID) (*SignedPacket, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/"+key.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("dns: relay: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dns: relay: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxRelayPayloadBytes+1))
	if err != nil {
		return nil, fmt.Errorf("dns: relay: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{Status: resp.StatusCode, Reason: strings.TrimSpace(string(body))}
	}
	return DecodeRelayPayload(key, body)
}

// PublishRelay puts p to a pkarr relay: PUT <base>/<z32>.
func PublishRelay(ctx context.Context, hc *http.Client, base string, p *SignedPacket) error {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimSuffix(base, "/")+"/"+p.Key().String(), bytes.NewReader(p.RelayPayload()))
	if err != nil {
		return fmt.Errorf("dns: relay: %w", err)
	}
	req.Header.Set("Content-Type", relayContentType)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("dns: relay: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return &StatusError{Status: resp.StatusCode, Reason: strings.TrimSpace(string(body))}
	}
	return nil
}

// Resolve fetches and verifies the self-description of node id through
// via: an http(s) URL is a pkarr relay base ("https://host/pkarr"); any
// other form is an alknet address ("[nodeid@]host:port") asked over
// alknet/dns with d (nil: an anonymous dialer, which needs a pinned
// address). The record is only as fresh as the resolver's copy.
func Resolve(ctx context.Context, id core.NodeID, via string, d *core.Dialer, hc *http.Client) (NodeRecord, error) {
	var (
		p   *SignedPacket
		err error
	)
	if strings.HasPrefix(via, "https://") || strings.HasPrefix(via, "http://") {
		p, err = FetchRelay(ctx, hc, via, id)
	} else {
		p, err = Fetch(ctx, d, strings.TrimPrefix(via, "alknet://"), id)
	}
	if err != nil {
		return NodeRecord{}, err
	}
	return ReadSelf(p)
}
