package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
)

// Client talks to a daemon's API socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket at path. Nothing is dialled until the first call.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// Close closes the client's idle connections (a CLI process need not; a long-lived program should).
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// APIError is an error answer from the daemon.
type APIError struct {
	Status int
	Kind   string
	Msg    string
}

func (e *APIError) Error() string { return e.Msg }

// Is lets errors.Is match the store's sentinels across the socket.
func (e *APIError) Is(target error) bool {
	switch e.Kind {
	case "exists":
		return target == sadb.ErrExists
	case "not_found":
		return target == sadb.ErrNotFound
	case "invalid":
		return target == sadb.ErrInvalid
	case "immutable":
		return target == sadb.ErrImmutable
	case "full":
		return target == sadb.ErrFull
	}
	return false
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		defer clear(b) // may hold keys
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://xdpsec"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("connect to daemon at %s (is `xdpsec run` running?): %w", c.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&e) != nil || e.Error == "" {
			e.Error = resp.Status
		}
		return &APIError{Status: resp.StatusCode, Kind: e.Kind, Msg: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// answer makes a call whose answer is a T. (Not `return v, c.call(…, &v)`: Go leaves unspecified whether
// v is read before or after the call.)
func answer[T any](ctx context.Context, c *Client, method, path string, in any) (T, error) {
	var v T
	err := c.call(ctx, method, path, in, &v)
	return v, err
}

// AddSA adds an SA.
func (c *Client) AddSA(ctx context.Context, sa sadb.SA) (SAView, error) {
	return answer[SAView](ctx, c, http.MethodPost, "/v1/sa", sa)
}

// UpdateSA updates an SA.
func (c *Client) UpdateSA(ctx context.Context, sa sadb.SA) (SAView, error) {
	return answer[SAView](ctx, c, http.MethodPut, "/v1/sa", sa)
}

// DeleteSA deletes an SA.
func (c *Client) DeleteSA(ctx context.Context, ref sadb.Ref) (SAView, error) {
	return answer[SAView](ctx, c, http.MethodPost, "/v1/sa/delete", ref)
}

// GetSA returns one SA.
func (c *Client) GetSA(ctx context.Context, ref sadb.Ref, showKeys bool) (SAView, error) {
	return answer[SAView](ctx, c, http.MethodPost, "/v1/sa/get", SAGet{Ref: ref, ShowKeys: showKeys})
}

// ListSAs returns every SA.
func (c *Client) ListSAs(ctx context.Context, showKeys bool) ([]SAView, error) {
	p := "/v1/sa"
	if showKeys {
		p += "?show_keys=1"
	}
	return answer[[]SAView](ctx, c, http.MethodGet, p, nil)
}

// FlushSAs deletes every SA.
func (c *Client) FlushSAs(ctx context.Context) ([]SAView, error) {
	return answer[[]SAView](ctx, c, http.MethodPost, "/v1/sa/flush", nil)
}

// AddPolicy adds a policy.
func (c *Client) AddPolicy(ctx context.Context, p sadb.Policy) (PolicyView, error) {
	return answer[PolicyView](ctx, c, http.MethodPost, "/v1/sp", p)
}

// UpdatePolicy updates a policy.
func (c *Client) UpdatePolicy(ctx context.Context, p sadb.Policy) (PolicyView, error) {
	return answer[PolicyView](ctx, c, http.MethodPut, "/v1/sp", p)
}

// DeletePolicy deletes a policy.
func (c *Client) DeletePolicy(ctx context.Context, ref sadb.PolicyRef) (PolicyView, error) {
	return answer[PolicyView](ctx, c, http.MethodPost, "/v1/sp/delete", ref)
}

// ListPolicies returns every policy in SPD order.
func (c *Client) ListPolicies(ctx context.Context) ([]PolicyView, error) {
	return answer[[]PolicyView](ctx, c, http.MethodGet, "/v1/sp", nil)
}

// FlushPolicies deletes every policy.
func (c *Client) FlushPolicies(ctx context.Context) ([]PolicyView, error) {
	return answer[[]PolicyView](ctx, c, http.MethodPost, "/v1/sp/flush", nil)
}

// Stats returns the global counters.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	return answer[Stats](ctx, c, http.MethodGet, "/v1/stats", nil)
}

// Check runs the consistency check between the SAD/SPD and the card.
func (c *Client) Check(ctx context.Context) (offload.Report, error) {
	return answer[offload.Report](ctx, c, http.MethodPost, "/v1/check", nil)
}

// Reload makes the daemon re-read its configuration file.
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	return answer[ReloadResult](ctx, c, http.MethodPost, "/v1/reload", nil)
}

// Monitor streams events to f until ctx ends, the daemon closes the stream, or f returns an error.
func (c *Client) Monitor(ctx context.Context, f func(events.Event) error) error {
	return c.lines(ctx, "/v1/monitor", func(line []byte) error {
		var ev events.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("monitor: decode event: %w", err)
		}
		return f(ev)
	})
}

// lines follows a stream of JSON lines at path, calling f for each, until ctx ends, the daemon
// closes it (nil), or f returns an error.
func (c *Client) lines(ctx context.Context, path string, f func([]byte) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://xdpsec"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("connect to daemon at %s (is `xdpsec run` running?): %w", c.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &APIError{Status: resp.StatusCode, Msg: path + ": " + resp.Status}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if err := f(sc.Bytes()); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
