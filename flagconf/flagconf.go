package flagconf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
)

// EnvName is the environment variable of the flag name under prefix:
// SHORTENER_API_KEY_HASH for api-key-hash.
func EnvName(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// ApplyEnv sets each flag of fs that the command line did not set from
// its variable (EnvName) when lookup finds one that is not empty, so that
// the command line wins. A flag that takes several values takes them
// separated by white space from an array flag (each value may hold commas,
// like --peer) and by commas from a slice flag, as on the command line.
// The flags named in only are command-line only (--config, --help): their
// variables are ignored. The error names the variable and why its value
// was refused.
func ApplyEnv(fs *pflag.FlagSet, prefix string, lookup func(string) (string, bool), only []string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || slices.Contains(only, f.Name) {
			return
		}
		env := EnvName(prefix, f.Name)
		v, ok := lookup(env)
		if !ok || v == "" {
			return
		}
		values := []string{v}
		if f.Value.Type() == "stringArray" {
			values = strings.Fields(v)
		}
		for _, one := range values {
			if e := fs.Set(f.Name, one); e != nil {
				err = fmt.Errorf("$%s: %w", env, e)
				return
			}
		}
	})
	return err
}

// LoadFile sets each flag of fs that neither the command line nor the
// environment set from the config file at path: TOML (.toml) or JSON
// (.json), one key per flag, named as the flag with "_" for "-" (aliases
// maps other accepted keys to flag names), a list for a flag that takes
// several values. An unknown key (a flag of only, which is command-line
// only, counts as one), two keys for one flag, a table, a list for a flag
// of one value and a value the flag refuses are errors naming the file and
// the key.
func LoadFile(path string, fs *pflag.FlagSet, aliases map[string]string, only []string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	keys := map[string]any{}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".toml":
		if _, err := toml.Decode(string(data), &keys); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
	case ".json":
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&keys); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
	default:
		return fmt.Errorf("config %s: want a .toml or a .json file", path)
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	seen := map[string]string{}
	for _, key := range names {
		name, ok := aliases[key]
		if !ok {
			name = strings.ReplaceAll(key, "_", "-")
		}
		f := fs.Lookup(name)
		if f == nil || strings.Contains(key, "-") || slices.Contains(only, name) {
			return fmt.Errorf("config %s: unknown key %q", path, key)
		}
		if other, dup := seen[name]; dup {
			return fmt.Errorf("config %s: %q and %q are the same setting: give one", path, other, key)
		}
		seen[name] = key
		if f.Changed {
			continue
		}
		values, err := scalars(keys[key], multi(f))
		if err == nil {
			for _, v := range values {
				if err = fs.Set(name, v); err != nil {
					break
				}
			}
		}
		if err != nil {
			return fmt.Errorf("config %s: %s: %w", path, key, err)
		}
	}
	return nil
}

// multi reports whether f takes several values.
func multi(f *pflag.Flag) bool {
	t := f.Value.Type()
	return strings.HasSuffix(t, "Slice") || strings.HasSuffix(t, "Array")
}

// scalars returns the text of v, a config file's value: one for a flag of
// one value, each element of a list for a flag of several.
func scalars(v any, many bool) ([]string, error) {
	if list, ok := v.([]any); ok {
		if !many {
			return nil, fmt.Errorf("a list for a setting of one value")
		}
		var out []string
		for _, e := range list {
			s, err := scalar(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := scalar(v)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

func scalar(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case json.Number:
		return v.String(), nil
	}
	return "", fmt.Errorf("%T is not a value a flag takes", v)
}

// Print writes the values of fs's flags, except those skip names, as a
// TOML config file that LoadFile reads back: keys sorted, the value of
// each flag secret names (when not empty) replaced by "(masked)", and so
// is the user information of a URL.
func Print(w io.Writer, fs *pflag.FlagSet, skip, secret []string) error {
	out := map[string]any{}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || slices.Contains(skip, f.Name) {
			return
		}
		key := strings.ReplaceAll(f.Name, "-", "_")
		var v any
		switch f.Value.Type() {
		case "bool":
			v, err = fs.GetBool(f.Name)
		case "int":
			var n int
			n, err = fs.GetInt(f.Name)
			v = int64(n)
		case "float64":
			v, err = fs.GetFloat64(f.Name)
		case "stringSlice":
			v, err = fs.GetStringSlice(f.Name)
		case "stringArray":
			v, err = fs.GetStringArray(f.Name)
		default:
			v = maskUser(f.Value.String())
		}
		if slices.Contains(secret, f.Name) && !empty(v) {
			v = "(masked)"
		}
		out[key] = v
	})
	if err != nil {
		return err
	}
	return toml.NewEncoder(w).Encode(out)
}

// maskUser hides the user information of a URL (nats://user:password@h),
// which may hold a credential; anything else comes back as it is.
func maskUser(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil || u.Host == "" {
		return s
	}
	u.User = url.User("(masked)")
	return u.String()
}

func empty(v any) bool {
	switch v := v.(type) {
	case string:
		return v == ""
	case []string:
		return len(v) == 0
	}
	return false
}
