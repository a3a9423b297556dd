// Package procs runs regions (and the DNS switch) as child processes: it
// starts them, stops them (SIGTERM), kills them (SIGKILL), signals them,
// waits for them to be ready (a region's /readyz answers 200 once it has
// caught up), and builds a region's command line from one config struct
// (RegionConfig.Args). On top of that it holds the dev cluster's supervisor
// (what `make run` starts) with its control socket, which region-down,
// region-up and region-stop ask.
//
// Every process is a *Proc: Start returns once the process runs, Done is
// closed once it has exited and its log is closed, so no caller ever waits
// on an exec.Cmd itself. Waits poll with a deadline; none sleeps a fixed time.
//
// procs imports no package of the project except secrets and region (for
// the API key hash and the readiness document); it must not import cmd,
// bench or chaos, which call it.
package procs
