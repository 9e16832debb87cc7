package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/sadb"
)

// The client side of what docs/ike-api.md adds (what the CLI and tests use; strongSwan's plugin has
// its own, in C).

func ownerQuery(path string, f sadb.OwnerFilter) string {
	if f.Set {
		return path + "?owner=" + f.Owner.String()
	}
	return path
}

// Info returns the daemon's identity and epoch.
func (c *Client) Info(ctx context.Context) (Info, error) {
	return answer[Info](ctx, c, http.MethodGet, "/v1/info", nil)
}

// ListSAsOf returns the SAs of the owners f selects.
func (c *Client) ListSAsOf(ctx context.Context, f sadb.OwnerFilter, showKeys bool) ([]SAView, error) {
	v := url.Values{}
	if f.Set {
		v.Set("owner", f.Owner.String())
	}
	if showKeys {
		v.Set("show_keys", "1")
	}
	p := "/v1/sa"
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	return answer[[]SAView](ctx, c, http.MethodGet, p, nil)
}

// FlushSAsOf deletes the SAs of the owners f selects.
func (c *Client) FlushSAsOf(ctx context.Context, f sadb.OwnerFilter) ([]SAView, error) {
	return answer[[]SAView](ctx, c, http.MethodPost, ownerQuery("/v1/sa/flush", f), nil)
}

// ListPoliciesOf returns the policies of the owners f selects.
func (c *Client) ListPoliciesOf(ctx context.Context, f sadb.OwnerFilter) ([]PolicyView, error) {
	return answer[[]PolicyView](ctx, c, http.MethodGet, ownerQuery("/v1/sp", f), nil)
}

// FlushPoliciesOf deletes the policies of the owners f selects.
func (c *Client) FlushPoliciesOf(ctx context.Context, f sadb.OwnerFilter) ([]PolicyView, error) {
	return answer[[]PolicyView](ctx, c, http.MethodPost, ownerQuery("/v1/sp/flush", f), nil)
}

// AllocSPI reserves an SPI.
func (c *Client) AllocSPI(ctx context.Context, req SPIRequest) (SPIAnswer, error) {
	return answer[SPIAnswer](ctx, c, http.MethodPost, "/v1/spi", req)
}

// MigrateSA moves an SA in place.
func (c *Client) MigrateSA(ctx context.Context, m Migration) (SAView, error) {
	return answer[SAView](ctx, c, http.MethodPost, "/v1/sa/migrate", m)
}

// GetPolicy returns one policy with its last use.
func (c *Client) GetPolicy(ctx context.Context, ref sadb.PolicyRef) (PolicyView, error) {
	return answer[PolicyView](ctx, c, http.MethodPost, "/v1/sp/get", PolicyGet{Ref: ref})
}

// EventQuery says where an event stream starts and what it carries.
type EventQuery struct {
	Since uint64 // the last sequence number handled (0: from the oldest held)
	Epoch string // the epoch Since belongs to
	Owner sadb.OwnerFilter
	Types []events.Type // none: every type
}

// StreamItem is one line of the event stream: an event, or (Line set) a stream-start, resync or
// keepalive line.
type StreamItem struct {
	Event events.Event
	Line  *StreamLine
}

// Events follows GET /v1/events, calling f for every line until ctx ends, the daemon closes the
// stream (nil), or f returns an error.
func (c *Client) Events(ctx context.Context, q EventQuery, f func(StreamItem) error) error {
	v := url.Values{}
	if q.Since != 0 {
		v.Set("since", strconv.FormatUint(q.Since, 10))
	}
	if q.Epoch != "" {
		v.Set("epoch", q.Epoch)
	}
	if q.Owner.Set {
		v.Set("owner", q.Owner.Owner.String())
	}
	if len(q.Types) > 0 {
		ts := make([]string, len(q.Types))
		for i, t := range q.Types {
			ts[i] = string(t)
		}
		v.Set("type", strings.Join(ts, ","))
	}
	return c.lines(ctx, "/v1/events?"+v.Encode(), func(line []byte) error {
		var probe struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(line, &probe); err != nil {
			return fmt.Errorf("events: decode line: %w", err)
		}
		var it StreamItem
		var err error
		switch probe.Type {
		case StreamStart, Resync, Keepalive:
			it.Line = new(StreamLine)
			err = json.Unmarshal(line, it.Line)
		default:
			err = json.Unmarshal(line, &it.Event)
		}
		if err != nil {
			return fmt.Errorf("events: decode line: %w", err)
		}
		return f(it)
	})
}

// NoKeepAlive makes the client open a connection per request, as strongSwan's plugin does.
func (c *Client) NoKeepAlive() {
	if tr, ok := c.hc.Transport.(*http.Transport); ok {
		tr.DisableKeepAlives = true
	}
}
