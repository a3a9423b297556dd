// Package flagconf gives every flag of a command two more sources: the
// environment (PREFIX_<FLAG>, e.g. SHORTENER_HTTP for --http) and a
// config file (TOML, or JSON as before, whose keys are the flag names with
// underscores), with one order of precedence: the command line over the
// environment over the file. It also prints a flag set's merged values as
// a config file, secrets masked. It sets flags through pflag's own Set, so
// a value from the environment or a file is parsed and checked exactly as
// the same value on the command line; an unknown key is an error.
//
// It adapts github.com/BurntSushi/toml and imports nothing of the
// application.
package flagconf
