// biud-launch: start N local ranks of a biud program (torchrun-style environment), relay their
// output, forward Ctrl-C/SIGTERM, and stop the whole job when one rank fails (core/Launcher.h).
#include "biud/app/App.h"
#include "biud/core/Launcher.h"

int main(int argc, char** argv) {
  biud::app::App app("biud-launch",
                     "Start N local processes of a (biud) program as one distributed job, like torchrun:\n"
                     "  biud-launch --nproc 2 -- biud-train -c configs/x.yaml\n"
                     "Each process gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT\n"
                     "(a free port unless --master-port). Ctrl-C/SIGTERM are forwarded to all ranks; when one rank\n"
                     "fails, the others are stopped and the failed rank, its exit code and its last stderr lines\n"
                     "are shown. The exit code is the failed rank's (130 when interrupted).");
  biud::launch::LaunchOptions l;
  auto& cli = app.cli();
  cli.add_option("-n,--nproc", l.nproc, "processes (ranks) to start on this node")
      ->required()
      ->check(CLI::Range(1, 1024));
  cli.add_option("--nnodes", l.nnodes, "nodes in the job (run biud-launch once per node)")->check(CLI::Range(1, 65536));
  cli.add_option("--node-rank", l.nodeRank, "index of this node, 0..nnodes-1 (node 0 hosts the store)");
  cli.add_option("--master-addr", l.addr, "host of rank 0 (the rendezvous store); default 127.0.0.1");
  cli.add_option("--master-port", l.port, "store port; default: a free port (single node only)")
      ->check(CLI::Range(0, 65535));
  cli.add_flag("--prefix", l.prefix, "prefix every output line with `[rank k] `");
  cli.add_option("--grace", l.grace, "seconds between SIGTERM and SIGKILL when stopping ranks")
      ->check(CLI::Range(0.0, 3600.0));
  cli.add_option("--save-grace", l.saveGrace,
                 "extra seconds after --grace for a rank that is still writing its checkpoint (it announces the save); "
                 "then it is killed too (default 600)")
      ->check(CLI::Range(0.0, 86400.0));
  cli.add_option("--tail", l.tailLines, "stderr lines of the failed rank to show")->check(CLI::Range(0, 10000));
  // Everything from the first argument that is not a launcher flag (or after `--`) is the command.
  cli.prefix_command();
  cli.footer("PROGRAM [ARGS...]: the command each rank runs (put `--` before it when in doubt).");
  return app.run(argc, argv, [&] {
    l.command = cli.remaining();
    if (!l.command.empty() && l.command.front() == "--") l.command.erase(l.command.begin());
    return biud::launch::launch(l);
  });
}
