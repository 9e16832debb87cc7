package api

import (
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
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
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
	if err := os.Chmod(path, 0o600); err != nil {
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
	if log == nil {
		log = slog.Default()
	}
	ln, err := Listen(path)
	if err != nil {
		return nil, err
	}
	s := &Server{path: path, log: log.With("component", "api"), done: make(chan struct{})}
	s.ln = peerListener{Listener: ln, log: s.log}
	stop := make(chan struct{})
	s.srv = &http.Server{Handler: newHandler(b, s.log, stop), ReadHeaderTimeout: 10 * time.Second}
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
func Handler(b Backend, log *slog.Logger) http.Handler { return newHandler(b, log, nil) }

func newHandler(b Backend, log *slog.Logger, stop <-chan struct{}) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &handler{b: b, log: log, stop: stop}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sa", h.saList)
	mux.HandleFunc("POST /v1/sa", h.saAdd)
	mux.HandleFunc("PUT /v1/sa", h.saUpdate)
	mux.HandleFunc("POST /v1/sa/get", h.saGet)
	mux.HandleFunc("POST /v1/sa/delete", h.saDelete)
	mux.HandleFunc("POST /v1/sa/flush", h.saFlush)
	mux.HandleFunc("GET /v1/sp", h.spList)
	mux.HandleFunc("POST /v1/sp", h.spAdd)
	mux.HandleFunc("PUT /v1/sp", h.spUpdate)
	mux.HandleFunc("POST /v1/sp/delete", h.spDelete)
	mux.HandleFunc("POST /v1/sp/flush", h.spFlush)
	mux.HandleFunc("GET /v1/stats", h.stats)
	mux.HandleFunc("GET /v1/monitor", h.monitor)
	mux.HandleFunc("POST /v1/check", h.check)
	mux.HandleFunc("POST /v1/reload", h.reload)
	return mux
}

type handler struct {
	b    Backend
	log  *slog.Logger
	stop <-chan struct{}
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

func (h *handler) saList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.b.ListSAs(r.URL.Query().Get("show_keys") == "1"))
}

func (h *handler) saAdd(w http.ResponseWriter, r *http.Request) {
	var sa sadb.SA
	if err := decode(r, &sa); err != nil {
		h.fail(w, err)
		return
	}
	v, err := h.b.AddSA(sa)
	wipe(&sa)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

func (h *handler) saUpdate(w http.ResponseWriter, r *http.Request) {
	var sa sadb.SA
	if err := decode(r, &sa); err != nil {
		h.fail(w, err)
		return
	}
	v, err := h.b.UpdateSA(sa)
	wipe(&sa)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func wipe(sa *sadb.SA) {
	for _, a := range []*sadb.Algorithm{sa.AEAD, sa.Enc, sa.Auth} {
		if a != nil {
			clear(a.Key)
		}
	}
}

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
}

func (h *handler) saDelete(w http.ResponseWriter, r *http.Request) {
	var ref sadb.Ref
	if err := decode(r, &ref); err != nil {
		h.fail(w, err)
		return
	}
	v, err := h.b.DeleteSA(ref)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *handler) saFlush(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.b.FlushSAs())
}

func (h *handler) spList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.b.ListPolicies())
}

func (h *handler) spAdd(w http.ResponseWriter, r *http.Request) {
	var p sadb.Policy
	if err := decode(r, &p); err != nil {
		h.fail(w, err)
		return
	}
	v, err := h.b.AddPolicy(p)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

func (h *handler) spUpdate(w http.ResponseWriter, r *http.Request) {
	var p sadb.Policy
	if err := decode(r, &p); err != nil {
		h.fail(w, err)
		return
	}
	v, err := h.b.UpdatePolicy(p)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *handler) spDelete(w http.ResponseWriter, r *http.Request) {
	var ref sadb.PolicyRef
	if err := decode(r, &ref); err != nil {
		h.fail(w, err)
		return
	}
	v, err := h.b.DeletePolicy(ref)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *handler) spFlush(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.b.FlushPolicies())
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	st, err := h.b.Stats(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (h *handler) check(w http.ResponseWriter, r *http.Request) {
	rep, err := h.b.Check(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (h *handler) reload(w http.ResponseWriter, r *http.Request) {
	res, err := h.b.Reload(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
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
