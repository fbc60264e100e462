package tbemu

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mochi-mqtt/server/v2/packets"
)

// redactHandler wraps the logger given to mochi-mqtt, which logs whole packets (attributes "pk"
// and "packet") on errors: CONNECT packets carry the device token and PUBLISH payloads the claim
// secret. It replaces them with a summary without secrets (docs/design.md §4).
type redactHandler struct {
	h slog.Handler
}

func (r redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, rec.Message, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a)
	}
	return redactHandler{r.h.WithAttrs(red)}
}

func (r redactHandler) WithGroup(name string) slog.Handler { return redactHandler{r.h.WithGroup(name)} }

func redactAttr(a slog.Attr) slog.Attr {
	switch v := a.Value.Any().(type) {
	case packets.Packet:
		return slog.String(a.Key, fmt.Sprintf("type=%d topic=%q id=%d payloadBytes=%d",
			v.FixedHeader.Type, v.TopicName, v.PacketID, len(v.Payload)))
	case *packets.Packet:
		return slog.String(a.Key, "[packet redacted]")
	}
	if a.Key == "pk" || a.Key == "packet" || a.Key == "username" || a.Key == "password" {
		return slog.String(a.Key, "[redacted]")
	}
	return a
}
