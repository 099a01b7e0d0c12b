/* convert: `xentrain convert {idx|csv|libsvm|h5}`: real data sets into the HDF5 layout
 * of dataset.h. Serial: main.c runs it on rank 0 only and shares the exit status.
 */
#ifndef XT_CONVERT_H
#define XT_CONVERT_H

/* argv[0] is "convert". Returns a process exit code (0, 1 or 2; see error.h) and
 * prints its own messages (errors name the file and line). */
int convert_main(int argc, char **argv);

#endif
