/* placeholder until the parser lands */
int mime_placeholder(void);
int mime_placeholder(void) { return 0; }
