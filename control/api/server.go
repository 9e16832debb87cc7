package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// ErrInsecure is returned when the socket's directory or an existing file there could let another user
// reach or replace the socket.
var ErrInsecure = errors.New("insecure socket path")

// ErrInUse is returned when a daemon already listens on the socket.
var ErrInUse = errors.New("socket in use")

// maxBody bounds request bodies: requests are small.
const maxBody = 1 << 20

// Server is the API server.
type Server struct {
	path string
	ln   net.Listener
	srv  *http.Server
	log  *slog.Logger
	done chan struct{}
}

// Listen prepares the unix socket at path: its directory is created 0700 if missing, and must not be
// writable by group or others (or a local user could replace the socket); a stale socket is removed, a
// live one is ErrInUse; the socket itself is mode 0600. Because the directory admits only its owner, no
// one else can reach the socket even between bind and chmod.
func Listen(path string) (net.Listener, error) { return listen(path, -1) }

// listen is Listen, admitting group gid too when it is not -1: the directory is then 0750 and the
// socket 0660, both with that group (the directory is still refused when others may write to it).
func listen(path string, gid int) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if gid >= 0 {
		if err := shareDir(dir, gid); err != nil {
			return nil, fmt.Errorf("listen %s: %w", path, err)
		}
	}
	if err := checkDir(dir); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen %s: %w: a non-socket file is in the way", path, ErrInsecure)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: %w: another daemon answers there", path, ErrInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen %s: remove stale socket: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen %s: %w", path, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return ln, nil
}

func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrInsecure, dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: directory %s is writable by group or others (mode %o); use a directory only its owner can write, like /run/xdpsec",
			ErrInsecure, dir, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() && st.Uid != 0 {
		return fmt.Errorf("%w: directory %s belongs to uid %d", ErrInsecure, dir, st.Uid)
	}
	return nil
}

// Serve starts serving b on the socket at path (see Listen) and returns at once.
func Serve(path string, b Backend, log *slog.Logger) (*Server, error) {
	return ServeWith(path, b, ServeOptions{Log: log})
}

// ServeOptions tune ServeWith.
type ServeOptions struct {
	Log *slog.Logger
	// Group (a name or a number), when set, is admitted besides root and the daemon's user: the
	// socket is 0660 and its directory 0750 with that group, and peers with that group or in it get
	// answers (daemon.socket_group; an IKE daemon running as another user).
	Group string
	// Keepalive is the event stream's idle interval (default DefaultKeepalive).
	Keepalive time.Duration
}

// ServeWith is Serve with options.
func ServeWith(path string, b Backend, opts ServeOptions) (*Server, error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	gid := -1
	if opts.Group != "" {
		g, err := LookupGroup(opts.Group)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", path, err)
		}
		gid = g
	}
	ln, err := listen(path, gid)
	if err != nil {
		return nil, err
	}
	s := &Server{path: path, log: log.With("component", "api"), done: make(chan struct{})}
	s.ln = peerListener{Listener: ln, log: s.log, gid: gid}
	stop := make(chan struct{})
	h := newHandler(b, s.log, stop)
	h.keepalive = opts.Keepalive
	s.srv = &http.Server{Handler: h.withEpoch(h.mux), ReadHeaderTimeout: 10 * time.Second}
	// Monitor streams never end on their own: end them when the server shuts down.
	s.srv.RegisterOnShutdown(func() { close(stop) })
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api server stopped", "err", err)
		}
	}()
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops the server (ending monitor streams) and removes the socket.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	<-s.done
	os.Remove(s.path)
	return err
}

// Handler returns the API's HTTP handler over b.
func Handler(b Backend, log *slog.Logger) http.Handler {
	h := newHandler(b, log, nil)
	return h.withEpoch(h.mux)
}

func newHandler(b Backend, log *slog.Logger, stop <-chan struct{}) *handler {
	if log == nil {
		log = slog.Default()
	}
	h := &handler{b: b, log: log, stop: stop}
	mux := http.NewServeMux()
	h.mux = mux
	mux.HandleFunc("GET /v1/sa", h.saList)
	mux.HandleFunc("POST /v1/sa", withBody(h, http.StatusCreated, func(b Backend, sa sadb.SA) (SAView, error) {
		defer sa.Wipe() // the backend has its own copy
		if err := notConfig(sa.Owner); err != nil {
			return SAView{}, err
		}
		return b.AddSA(sa)
	}))
	mux.HandleFunc("PUT /v1/sa", withBody(h, http.StatusOK, func(b Backend, sa sadb.SA) (SAView, error) {
		defer sa.Wipe() // the backend has its own copy
		return b.UpdateSA(sa)
	}))
	mux.HandleFunc("POST /v1/sa/get", h.saGet)
	mux.HandleFunc("POST /v1/sa/delete", withBody(h, http.StatusOK, func(b Backend, ref sadb.Ref) (any, error) {
		v, err := b.DeleteSA(ref)
		if errors.Is(err, sadb.ErrNotFound) && ref.ID != nil && b.DeleteLarval(*ref.ID) {
			// An SPI reserved for a negotiation that failed.
			id := *ref.ID
			return LarvalView{SPI: id.SPI, Dst: id.Dst.Unmap(), Proto: cmp.Or(id.Proto, ipsec.ProtoESP), State: "larval"}, nil
		}
		return v, err
	}))
	mux.HandleFunc("POST /v1/sa/flush", h.saFlush)
	mux.HandleFunc("GET /v1/sp", h.spList)
	mux.HandleFunc("POST /v1/sp", h.spAdd)
	mux.HandleFunc("PUT /v1/sp", withBody(h, http.StatusOK, func(b Backend, in policyIn) (PolicyView, error) {
		p, err := in.policy()
		if err != nil {
			return PolicyView{}, err
		}
		return b.UpdatePolicy(p)
	}))
	mux.HandleFunc("POST /v1/sp/delete", h.owned(func(r *http.Request, f sadb.OwnerFilter) (any, error) {
		var in policyRefIn
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		ref, err := in.ref()
		if err != nil {
			return nil, err
		}
		return h.b.DeletePolicyOf(ref, f)
	}))
	mux.HandleFunc("POST /v1/sp/flush", h.spFlush)
	mux.HandleFunc("GET /v1/stats", withContext(h, Backend.Stats))
	mux.HandleFunc("GET /v1/monitor", h.monitor)
	mux.HandleFunc("POST /v1/check", withContext(h, Backend.Check))
	mux.HandleFunc("POST /v1/reload", withContext(h, Backend.Reload))
	h.registerIKE(mux)
	return h
}

type handler struct {
	b         Backend
	log       *slog.Logger
	stop      <-chan struct{}
	mux       *http.ServeMux
	keepalive time.Duration // the event stream's
}

// notConfig refuses owner config in a request: only the configuration file's loader sets it (a
// reload would otherwise delete an SA or policy that someone added by hand).
func notConfig(o sadb.Owner) error {
	if o == sadb.OwnerConfig {
		return fmt.Errorf("%w: owner config belongs to the configuration file's entries; use cli or ike", errBadRequest)
	}
	return nil
}

func errKind(err error) (int, string) {
	switch {
	case errors.Is(err, sadb.ErrExists):
		return http.StatusConflict, "exists"
	case errors.Is(err, sadb.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, sadb.ErrImmutable):
		return http.StatusBadRequest, "immutable"
	case errors.Is(err, sadb.ErrInvalid), errors.Is(err, errBadRequest):
		return http.StatusBadRequest, "invalid"
	case errors.Is(err, sadb.ErrFull):
		return http.StatusInsufficientStorage, "full"
	case errors.Is(err, ErrEpoch):
		return http.StatusPreconditionFailed, "epoch"
	case errors.Is(err, sadb.ErrUnsupported):
		return http.StatusNotImplemented, "unsupported"
	}
	return http.StatusInternalServerError, "internal"
}

var errBadRequest = errors.New("bad request")

func (h *handler) fail(w http.ResponseWriter, err error) {
	code, kind := errKind(err)
	writeJSON(w, code, Error{Error: err.Error(), Kind: kind})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: decode request: %w", errBadRequest, err)
	}
	return nil
}

// saGet and saList release the key copies of a show_keys reply once it is written (the store made
// them in key memory for this reply alone).
func (h *handler) saGet(w http.ResponseWriter, r *http.Request) {
	var q SAGet
	if err := decode(r, &q); err != nil {
		h.fail(w, err)
		return
	}
	v, err := h.b.GetSA(q.Ref, q.ShowKeys)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
	if q.ShowKeys {
		v.SA.Wipe()
	}
}

func (h *handler) saList(w http.ResponseWriter, r *http.Request) {
	f, err := ownerParam(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	show := r.URL.Query().Get("show_keys") == "1"
	l := h.b.ListSAsOf(f, show)
	writeJSON(w, http.StatusOK, l)
	if show {
		for i := range l {
			l[i].SA.Wipe()
		}
	}
}

func (h *handler) saFlush(w http.ResponseWriter, r *http.Request) {
	h.owned(func(_ *http.Request, f sadb.OwnerFilter) (any, error) { return h.b.FlushSAsOf(f), nil })(w, r)
}

func (h *handler) spList(w http.ResponseWriter, r *http.Request) {
	h.owned(func(_ *http.Request, f sadb.OwnerFilter) (any, error) { return h.b.ListPoliciesOf(f), nil })(w, r)
}

func (h *handler) spFlush(w http.ResponseWriter, r *http.Request) {
	h.owned(func(_ *http.Request, f sadb.OwnerFilter) (any, error) { return h.b.FlushPoliciesOf(f), nil })(w, r)
}

// spAdd adds a policy: 201 when it is new, 200 when an identical ike policy existed (docs/ike-api.md).
func (h *handler) spAdd(w http.ResponseWriter, r *http.Request) {
	var in policyIn
	err := decode(r, &in)
	var p sadb.Policy
	if err == nil {
		p, err = in.policy()
	}
	if err == nil {
		err = notConfig(p.Owner)
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	v, created, err := h.b.PutPolicy(p)
	if err != nil {
		h.fail(w, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, v)
}

// policyIn is a policy as a request carries it: its dir must be written, because the zero direction
// is out, and a client that leaves it out must not install an outbound policy by accident.
type policyIn struct {
	sadb.Policy
	Dir *ipsec.Dir `json:"dir"` // shadows Policy.Dir
}

func (in *policyIn) policy() (sadb.Policy, error) {
	if in.Dir == nil {
		return sadb.Policy{}, fmt.Errorf("%w: a policy needs its dir (in, out or fwd)", errBadRequest)
	}
	p := in.Policy
	p.Dir = *in.Dir
	return p, nil
}

// policyRefIn is a policy reference as a request carries it: a key names its dir, as policyIn does.
type policyRefIn struct {
	sadb.PolicyRef
	Key *struct {
		Dir *ipsec.Dir     `json:"dir"`
		Sel ipsec.Selector `json:"sel"`
	} `json:"key,omitempty"` // shadows PolicyRef.Key
}

func (in *policyRefIn) ref() (sadb.PolicyRef, error) {
	r := in.PolicyRef
	if k := in.Key; k != nil {
		if k.Dir == nil {
			return sadb.PolicyRef{}, fmt.Errorf("%w: a policy key needs its dir (in or out)", errBadRequest)
		}
		r.Key = &sadb.PolicyKey{Dir: *k.Dir, Sel: k.Sel}
	}
	return r, nil
}

// withBody serves a call that takes the request's JSON body: its answer with code, or the error.
// call takes the backend first so that a method expression such as Backend.DeleteSA serves as it is.
func withBody[In, Out any](h *handler, code int, call func(Backend, In) (Out, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in In
		if err := decode(r, &in); err != nil {
			h.fail(w, err)
			return
		}
		v, err := call(h.b, in)
		if err != nil {
			h.fail(w, err)
			return
		}
		writeJSON(w, code, v)
	}
}

// withContext serves a call that takes only the request's context.
func withContext[Out any](h *handler, call func(Backend, context.Context) (Out, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := call(h.b, r.Context())
		if err != nil {
			h.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// monitor streams events as JSON lines until the client goes away or the server closes.
func (h *handler) monitor(w http.ResponseWriter, r *http.Request) {
	sub := h.b.Subscribe(1024)
	defer sub.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.stop:
			return
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			if err := enc.Encode(ev); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}
