/* gen: `xentrain gen {blobs|xor|spirals|multilabel|sparse|sparse-multilabel}`: seeded synthetic
 * data sets with /train, /val and /test splits in the layout of dataset.h. Serial (rank 0 only).
 */
#ifndef XT_GEN_H
#define XT_GEN_H

/* argv[0] is "gen". Returns a process exit code and prints its own messages. */
int gen_main(int argc, char **argv);

#endif
