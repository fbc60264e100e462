package claim

import (
	"context"
	"regexp"
)

type actorKey struct{}

// validActor is what an actor may be: a short name, optionally with a key
// digest prefix ("console", "console:3f2a9c1b").
var validActor = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}(:[0-9a-f]{8})?$`)

// WithActor returns ctx carrying who asks for the changes made with it (the
// audit trail's actor: docs/design.md §12). The store records it on the
// events it writes for those changes: accepted, retried, cancelled. An
// invalid actor is ignored, so that nothing but a short name and a digest
// prefix ever reaches the audit trail.
func WithActor(ctx context.Context, actor string) context.Context {
	if !validActor.MatchString(actor) {
		return ctx
	}
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor ctx carries, or "".
func ActorFrom(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}
