package tbemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// With Config.DataDir the emulator keeps what ThingsBoard keeps in its database, and nothing else:
// the claim cache (Caffeine, in memory) starts empty after a restart, as do MQTT sessions, the IP
// block table and the rate-limit buckets (docs/thingsboard.md §3.1, §9).

// stateFile is the name of the state file inside Config.DataDir.
const stateFile = "tbemu-state.json"

// stateVersion is the format of the state file.
const stateVersion = 1

// snapshot is the state file's content. It holds secrets (passwords, device tokens, API keys, the
// JWT key), so the file is written with mode 0600.
type snapshot struct {
	Version    int                             `json:"version"`
	JWTKey     []byte                          `json:"jwtKey"`
	TenantID   string                          `json:"tenantId"`
	DemoKeyID  string                          `json:"demoApiKeyId,omitempty"`
	Tenants    []*tenant                       `json:"tenants"`
	Customers  []*customer                     `json:"customers"`
	Users      []*user                         `json:"users"`
	Profiles   []*deviceProfile                `json:"deviceProfiles"`
	Devices    []*device                       `json:"devices"`
	APIKeys    []*apiKey                       `json:"apiKeys"`
	Attributes map[string]map[string]attribute `json:"serverAttributes"`
}

// snapshotLocked copies the persistent state. The caller holds the state lock.
func (e *Emulator) snapshotLocked() snapshot {
	return snapshot{Version: stateVersion, JWTKey: e.st.jwtKey, TenantID: e.tenantID, DemoKeyID: e.st.demoKeyID,
		Attributes: e.st.attrs, Tenants: values(e.st.tenants), Customers: values(e.st.customers),
		Users: values(e.st.users), Profiles: values(e.st.profiles), Devices: values(e.st.devices),
		APIKeys: values(e.st.apiKeys)}
}

func values[T any](m map[string]T) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// loadState reads DataDir's state file into the (empty) state. It reports false when there is no
// file yet.
func (e *Emulator) loadState() (bool, error) {
	b, err := os.ReadFile(filepath.Join(e.cfg.DataDir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("tbemu: read state: %w", err)
	}
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return false, fmt.Errorf("tbemu: state file %s is damaged: %w", stateFile, err)
	}
	if s.Version != stateVersion || len(s.JWTKey) < 32 || s.TenantID == "" {
		return false, fmt.Errorf("tbemu: state file %s has an unknown format (version %d)", stateFile, s.Version)
	}
	st := e.st
	st.jwtKey, st.demoKeyID = s.JWTKey, s.DemoKeyID
	e.tenantID = s.TenantID
	for _, t := range s.Tenants {
		st.tenants[t.ID] = t
	}
	for _, c := range s.Customers {
		st.customers[c.ID] = c
	}
	for _, u := range s.Users {
		st.users[u.ID] = u
	}
	for _, p := range s.Profiles {
		st.profiles[p.ID] = p
	}
	for _, d := range s.Devices {
		st.devices[d.ID] = d
		st.byToken[d.Token] = d
	}
	for _, k := range s.APIKeys {
		st.apiKeys[k.ID] = k
	}
	if s.Attributes != nil {
		st.attrs = s.Attributes
	}
	if st.tenants[e.tenantID] == nil || st.defaultProfile(e.tenantID) == nil {
		return false, fmt.Errorf("tbemu: state file %s lacks its tenant or default device profile", stateFile)
	}
	return true, nil
}

// saveIfDirty writes the state file when something persistent changed: the whole state is written
// to a temporary file, synced, and renamed over the old one, so a crash leaves either the old or
// the new state. Calls are serialised; each writes the newest state. Without a data directory it
// only clears the flag.
func (e *Emulator) saveIfDirty() {
	e.saveMu.Lock()
	defer e.saveMu.Unlock()
	e.st.mu.Lock()
	if !e.st.dirty {
		e.st.mu.Unlock()
		return
	}
	e.st.dirty = false
	if e.cfg.DataDir == "" {
		e.st.mu.Unlock()
		return
	}
	b, err := json.Marshal(e.snapshotLocked())
	e.st.mu.Unlock()
	if err == nil {
		err = writeFileAtomic(filepath.Join(e.cfg.DataDir, stateFile), b)
	}
	if err != nil {
		e.log.Error("saving the state failed; it will be retried with the next change", "dir", e.cfg.DataDir, "error", err)
		e.st.mu.Lock()
		e.st.dirty = true
		e.st.mu.Unlock()
	}
}

// writeFileAtomic writes data to path through a synced temporary file and a rename, then syncs the
// directory so the rename itself is durable.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
