// Package ctxlog carries request-scoped log attributes (the request ids) in a
// context, so every package logs them through its own *slog.Logger with the
// *Context methods, without knowing about HTTP or Lambda.
package ctxlog

import (
	"context"
	"log/slog"
)

type attrsKey struct{}

// With returns ctx carrying args (slog key-value pairs or slog.Attr) in
// addition to any it already carries.
func With(ctx context.Context, args ...any) context.Context {
	if len(args) == 0 {
		return ctx
	}
	r := slog.Record{}
	r.Add(args...)
	attrs := append([]slog.Attr(nil), attrsOf(ctx)...)
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	return context.WithValue(ctx, attrsKey{}, attrs)
}

func attrsOf(ctx context.Context) []slog.Attr {
	if ctx == nil {
		return nil
	}
	a, _ := ctx.Value(attrsKey{}).([]slog.Attr)
	return a
}

// Handler adds the context's attributes to every record it handles.
type Handler struct{ next slog.Handler }

// NewHandler wraps h; a Handler is returned as it is, so wrapping twice
// never repeats an attribute.
func NewHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(*Handler); ok {
		return h
	}
	return &Handler{next: h}
}

// New returns a logger whose records carry the context's attributes.
func New(l *slog.Logger) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	if _, ok := l.Handler().(*Handler); ok {
		return l
	}
	return slog.New(NewHandler(l.Handler()))
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if attrs := attrsOf(ctx); len(attrs) > 0 {
		r = r.Clone()
		r.AddAttrs(attrs...)
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name)}
}
